//! Reaching the API server through a proxy, as kubectl does: the kubeconfig cluster's
//! `proxy-url` (http, https, socks5), else `HTTPS_PROXY` unless `NO_PROXY` or a loopback server
//! says otherwise. The cluster's name (`cluster.invalid`) resolves only through the test proxy,
//! so a run that does not use the proxy cannot reach it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use mlbackup_testkit::proxy::{ProxyKind, TestProxy};
use serde_json::{Value, json};

use crate::support::{FakeApi, FakeCluster, Run, Sandbox};

/// The API server's name as the kubeconfig gives it; only the proxy resolves it.
const HIDDEN: &str = "cluster.invalid";

/// A proxy on its own runtime (stopped when dropped).
struct Proxy {
    proxy: TestProxy,
    // Last: the proxy's tasks live on it.
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    fn start(kind: ProxyKind) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let proxy = runtime
            .block_on(TestProxy::start(
                kind,
                &[(HIDDEN, IpAddr::V4(Ipv4Addr::LOCALHOST))],
            ))
            .expect("start the test proxy");
        Proxy {
            proxy,
            _runtime: runtime,
        }
    }
}

/// A copy of the cluster's kubeconfig pointing at `https://cluster.invalid:PORT` (the
/// certificate is checked for `localhost` with `tls-server-name`, as kubectl allows), with
/// `proxy-url` when given.
fn hidden_kubeconfig(
    sandbox: &Sandbox,
    cluster: &FakeCluster,
    name: &str,
    proxy_url: Option<&str>,
) -> PathBuf {
    let text = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let mut config: Value = serde_yaml::from_str(&text).unwrap();
    let entry = &mut config["clusters"][0]["cluster"];
    let port = cluster.kube.url().rsplit(':').next().unwrap().to_string();
    entry["server"] = json!(format!("https://{HIDDEN}:{port}"));
    entry["tls-server-name"] = json!("localhost");
    if let Some(url) = proxy_url {
        entry["proxy-url"] = json!(url);
    }
    let path = sandbox.path(name);
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

fn backup(sandbox: &Sandbox, kubeconfig: &std::path::Path, name: &str) -> Run {
    sandbox.run(&[
        "backup",
        "--all-types",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--dir",
        "backups",
        "--name",
        name,
        "-o",
        "json",
    ])
}

fn port_of(cluster: &FakeCluster) -> String {
    cluster.kube.url().rsplit(':').next().unwrap().to_string()
}

#[test]
fn the_kubeconfigs_proxy_url_reaches_the_cluster_through_http_https_and_socks5_proxies() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 1);
    let expected = cluster.kube.list("lrs", None).len();
    let tunnel = format!("{HIDDEN}:{}", port_of(&cluster));

    let direct = hidden_kubeconfig(&sandbox, &cluster, "direct", None);
    let run = backup(&sandbox, &direct, "direct");
    mlbackup_testkit::assert_run_snapshot!("direct", run.shown(&sandbox));

    let tls = cluster.kube.tls_config().unwrap();
    for kind in [ProxyKind::Http, ProxyKind::Https(tls), ProxyKind::Socks5] {
        let proxy = Proxy::start(kind);
        let url = proxy.proxy.url();
        let scheme = url.split(':').next().unwrap().to_string();
        let kubeconfig = hidden_kubeconfig(&sandbox, &cluster, &scheme, Some(&url));
        let run = backup(&sandbox, &kubeconfig, &scheme);
        run.expect_code(0);
        assert_eq!(run.json()["objects"], expected, "{scheme}");
        let tunnels = proxy.proxy.tunnels();
        assert!(!tunnels.is_empty(), "{scheme}: the proxy was used");
        assert!(
            tunnels.iter().all(|t| *t == tunnel),
            "{scheme}: {tunnels:?}"
        );
    }
}

#[test]
fn https_proxy_from_the_environment_is_used_unless_no_proxy_or_a_loopback_server_says_otherwise() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let proxy = Proxy::start(ProxyKind::Http);
    let hidden = hidden_kubeconfig(&sandbox, &cluster, "hidden", None);
    let env_sandbox = |no_proxy: Option<&str>| {
        let sandbox = Sandbox::new().env("HTTPS_PROXY", proxy.proxy.url());
        match no_proxy {
            Some(value) => sandbox.env("NO_PROXY", value),
            None => sandbox,
        }
    };

    backup(&env_sandbox(None), &hidden, "env").expect_code(0);
    let tunnels = proxy.proxy.tunnels();
    assert!(!tunnels.is_empty());
    assert!(
        tunnels.iter().all(|t| t.starts_with(&format!("{HIDDEN}:"))),
        "{tunnels:?}"
    );

    // NO_PROXY covers the server: kubectl goes direct, and so does the plugin (which cannot
    // resolve the name then).
    for no_proxy in [HIDDEN, ".invalid", "localhost,*.invalid"] {
        let before = proxy.proxy.tunnels().len();
        let direct = env_sandbox(Some(no_proxy));
        let run = backup(&direct, &hidden, "no-proxy");
        mlbackup_testkit::assert_run_snapshot!("no_proxy", run.shown(&direct));
        assert_eq!(proxy.proxy.tunnels().len(), before, "NO_PROXY={no_proxy}");
    }

    // The kubeconfig's proxy-url is not subject to NO_PROXY.
    let pinned = hidden_kubeconfig(&sandbox, &cluster, "pinned", Some(&proxy.proxy.url()));
    backup(&env_sandbox(Some(HIDDEN)), &pinned, "pinned").expect_code(0);

    // A loopback server is never reached through the environment's proxy.
    let before = proxy.proxy.tunnels().len();
    backup(&env_sandbox(None), &cluster.kubeconfig, "loopback").expect_code(0);
    assert_eq!(proxy.proxy.tunnels().len(), before);
}

#[test]
fn an_unusable_proxy_url_is_named_without_its_password() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    let kubeconfig = hidden_kubeconfig(
        &sandbox,
        &cluster,
        "ftp",
        Some("ftp://admin:s3cret@proxy.example.com:21"),
    );
    let run = backup(&sandbox, &kubeconfig, "ftp");
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        "error: cannot connect to the cluster\n  caused by: the proxy-url of the kubeconfig's \
         cluster `ftp://***@proxy.example.com:21` uses the scheme `ftp`; the proxy must be \
         http, https or socks5\nhint: fix the cluster's proxy-url in the kubeconfig (`kubectl \
         config view`) or HTTPS_PROXY; kubectl takes the same\n"
    );
}

#[test]
fn the_helper_runs_in_the_app_pod_through_the_proxy() {
    crate::in_pod::helper_beside_the_plugin();
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    cluster
        .kube
        .add_app_deployment("dr-app", "mmapp-app", 1)
        .unwrap();
    let proxy = Proxy::start(ProxyKind::Http);
    let kubeconfig = hidden_kubeconfig(&sandbox, &cluster, "proxied", Some(&proxy.proxy.url()));
    let api = FakeApi::start(&sandbox, 2, 1, Default::default());
    let sandbox = api
        .configure(sandbox, api.datarobot.admin_token())
        .env("KUBECONFIG", kubeconfig.to_str().unwrap())
        .env("DR_CORE_NAMESPACE", "dr-app");
    // Upload and exec (WebSocket upgrades) go through the tunnel like every other request.
    let run = sandbox.run(&["deployments", "list", "--via", "pod"]);
    run.expect_code(0);
    assert!(run.stdout.contains("model-0002"), "{}", run.stdout);
    let tunnels = proxy.proxy.tunnels();
    assert!(tunnels.len() > 1, "{tunnels:?}");
    assert!(tunnels.iter().all(|t| t.starts_with(HIDDEN)), "{tunnels:?}");
}
