//! The real `kubectl` against the fake Kubernetes API server: discovery, paginated lists with
//! label selectors, client-side and server-side apply, delete with wait, bearer-token and RBAC
//! failures, exec. Each test uses its own server, kubeconfig and HOME (fresh discovery cache).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mlbackup_testkit::kube::{FakeKubeOptions, LRS_FINALIZER, typed_lrs_definition};
use mlbackup_testkit::world::World;
use serde_json::{Value, json};

use mlbackup_testkit::tools::kubectl;

/// A fake cluster with a kubeconfig and a private HOME for the clients run against it.
pub(crate) struct Cluster {
    world: World,
}

/// `kube` and `kubeconfig` of the world's cluster.
impl std::ops::Deref for Cluster {
    type Target = mlbackup_testkit::world::Cluster;

    fn deref(&self) -> &Self::Target {
        self.world.cluster()
    }
}

impl Cluster {
    pub(crate) async fn start(options: FakeKubeOptions) -> Cluster {
        let world = World::builder()
            .empty_cluster()
            .kube_options(options)
            .start()
            .await
            .expect("fake API server starts");
        Cluster { world }
    }

    /// A command for `program` with this cluster's kubeconfig and HOME and nothing from the
    /// user's environment that could point elsewhere.
    pub(crate) fn command(&self, program: impl AsRef<Path>) -> Command {
        self.world.command(program.as_ref())
    }

    /// Runs kubectl (blocking, on a worker thread so the server keeps serving) with `stdin`.
    pub(crate) async fn kubectl_with_input(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.command(kubectl());
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let input = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("kubectl runs");
            if let Some(input) = input {
                use std::io::Write;
                let mut pipe = child.stdin.take().expect("stdin piped");
                pipe.write_all(input.as_bytes()).expect("stdin written");
            }
            child.wait_with_output().expect("kubectl finishes")
        })
        .await
        .expect("kubectl thread")
    }

    pub(crate) async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None).await
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it failed.
    pub(crate) async fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args).await;
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Writes a manifest into the temp dir and returns its path.
    pub(crate) fn manifest(&self, name: &str, content: &Value) -> PathBuf {
        let path = self.world.path(name);
        std::fs::write(&path, serde_yaml::to_string(content).expect("yaml")).expect("manifest");
        path
    }
}

pub(crate) fn lrs(namespace: &str, name: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "lrs.datarobot.com/v1",
        "kind": "LongRunningService",
        "metadata": {"name": name, "namespace": namespace, "labels": {"datarobot-lrs-type": kind}},
        "spec": {"image": "datarobot/custom-model:1.0", "replicas": 1},
    })
}

fn names_in(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn get_pages_through_a_label_selected_list_across_namespaces() {
    let cluster = Cluster::start(FakeKubeOptions {
        max_page_size: Some(7),
        ..Default::default()
    })
    .await;
    for i in 0..20 {
        let namespace = if i % 2 == 0 { "dr-app" } else { "dr-models" };
        cluster
            .kube
            .insert(lrs(namespace, &format!("model-{i:02}"), "deployment"))
            .unwrap();
    }
    for i in 0..3 {
        cluster
            .kube
            .insert(lrs("dr-app", &format!("spark-{i}"), "spark_app"))
            .unwrap();
    }
    let yaml = cluster
        .kubectl_ok(&[
            "get",
            "lrs",
            "-A",
            "-l",
            "datarobot-lrs-type=deployment",
            "-o",
            "yaml",
        ])
        .await;
    let list: Value = serde_yaml::from_str(&yaml).expect("kubectl prints YAML");
    let names = names_in(&list);
    assert_eq!(names.len(), 20, "{names:?}");
    assert!(names.iter().all(|n| n.contains("/model-")));
    let continued = cluster.kube.requests().count(|r| {
        r.path == "/apis/lrs.datarobot.com/v1/lrs"
            && r.query.as_deref().is_some_and(|q| q.contains("continue="))
    });
    assert!(
        continued >= 2,
        "expected several continue requests, saw {continued}"
    );
}

#[tokio::test]
async fn apply_creates_then_updates_client_side_and_server_side() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.create_namespace("dr-app");
    let mut object = lrs("dr-app", "model-a", "deployment");
    let path = cluster.manifest("a.yaml", &object);
    let out = cluster
        .kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
        .await;
    assert!(out.contains("created"), "{out}");
    object["spec"]["replicas"] = json!(3);
    let path = cluster.manifest("a.yaml", &object);
    let out = cluster
        .kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
        .await;
    assert!(out.contains("configured"), "{out}");
    let stored = cluster.kube.get("lrs", Some("dr-app"), "model-a").unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
    assert_eq!(stored["metadata"]["generation"], 2);

    let mut other = lrs("dr-app", "model-b", "deployment");
    let path = cluster.manifest("b.yaml", &other);
    let out = cluster
        .kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap()])
        .await;
    assert!(out.contains("serverside-applied"), "{out}");
    other["spec"]["image"] = json!("datarobot/custom-model:2.0");
    let path = cluster.manifest("b.yaml", &other);
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap()])
        .await;
    let stored = cluster.kube.get("lrs", Some("dr-app"), "model-b").unwrap();
    assert_eq!(stored["spec"]["image"], "datarobot/custom-model:2.0");
    let managers: Vec<&str> = stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, vec!["kubectl"]);

    // Server-side apply over a field client-side apply set: a conflict kubectl reports.
    let mut clash = lrs("dr-app", "model-a", "deployment");
    clash["spec"]["replicas"] = json!(5);
    let path = cluster.manifest("clash.yaml", &clash);
    let output = cluster
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            path.to_str().unwrap(),
        ])
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("conflict"), "{stderr}");
}

#[tokio::test]
async fn kubectl_reports_the_fields_a_typed_definition_refuses() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.create_namespace("dr-app");
    // The definition replaced as an operator's chart upgrade would (client-side apply).
    let crd = cluster.manifest("crd.yaml", &typed_lrs_definition("v1"));
    let out = cluster
        .kubectl_ok(&["apply", "-f", crd.to_str().unwrap()])
        .await;
    assert!(out.contains("configured"), "{out}");

    let mut bad = lrs("dr-app", "model-a", "deployment");
    bad["spec"] = json!({"type": "deployment", "replicas": "three"});
    let path = cluster.manifest("bad.yaml", &bad);
    let output = cluster
        .kubectl(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            r#"The LongRunningService "model-a" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ),
        "{stderr}"
    );
    assert!(cluster.kube.get("lrs", Some("dr-app"), "model-a").is_none());

    // kubectl validates strictly by default (fieldValidation=Strict): an unknown field is refused;
    // with --validate=warn it is dropped and kubectl prints the server's warning.
    let mut unknown = lrs("dr-app", "model-b", "deployment");
    unknown["spec"] = json!({"type": "deployment", "replicas": 1, "colour": "blue"});
    let path = cluster.manifest("unknown.yaml", &unknown);
    let output = cluster
        .kubectl(&["apply", "-f", path.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"strict decoding error: unknown field "spec.colour""#),
        "{stderr}"
    );
    let output = cluster
        .kubectl(&["apply", "--validate=warn", "-f", path.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(r#"Warning: unknown field "spec.colour""#),
        "{stderr}"
    );
    let stored = cluster.kube.get("lrs", Some("dr-app"), "model-b").unwrap();
    assert_eq!(stored["spec"], json!({"type": "deployment", "replicas": 1}));
}

/// Runs kubectl, failing the test if it has not finished within `limit` (a generous bound for
/// a command that would otherwise hang, not a measurement).
async fn kubectl_within(cluster: &Cluster, args: &[&str], limit: Duration) -> Output {
    let mut command = tokio::process::Command::from(cluster.command(kubectl()));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("kubectl runs");
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.expect("kubectl finishes"),
        Err(_) => panic!("kubectl {args:?} did not return within {limit:?}"),
    }
}

/// An LRS as the LRS operator keeps it: with its cleanup finalizer.
fn operated_lrs(namespace: &str, name: &str, kind: &str) -> Value {
    let mut object = lrs(namespace, name, kind);
    object["metadata"]["finalizers"] = json!([LRS_FINALIZER]);
    object
}

fn lrs_names(cluster: &Cluster) -> Vec<String> {
    cluster
        .kube
        .list("lrs", None)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// What the runbook and every user types: kubectl deletes, then waits until the objects are gone,
/// which on a DataRobot cluster is when the LRS operator has released its finalizer.
#[tokio::test]
async fn deleting_lrses_waits_until_the_operator_releases_its_finalizer() {
    let cluster = Cluster::start(FakeKubeOptions {
        lrs_operator_delay: Some(Duration::from_millis(300)),
        ..FakeKubeOptions::default()
    })
    .await;
    for (namespace, name, kind) in [
        ("dr-app", "spark-1", "spark_app"),
        ("dr-models", "spark-2", "spark_app"),
        ("dr-app", "model-1", "deployment"),
        ("dr-models", "model-2", "deployment"),
    ] {
        cluster
            .kube
            .insert(operated_lrs(namespace, name, kind))
            .unwrap();
    }
    let limit = Duration::from_secs(60);

    let one = kubectl_within(
        &cluster,
        &["delete", "lrs", "-n", "dr-app", "model-1"],
        limit,
    )
    .await;
    assert!(one.status.success(), "{one:?}");
    assert_eq!(
        String::from_utf8_lossy(&one.stdout),
        "longrunningservice.lrs.datarobot.com \"model-1\" deleted\n"
    );
    assert!(
        cluster.kube.get("lrs", Some("dr-app"), "model-1").is_none(),
        "kubectl returned once it was gone"
    );

    let sessions = kubectl_within(
        &cluster,
        &["delete", "lrs", "-A", "-l", "datarobot-lrs-type=spark_app"],
        limit,
    )
    .await;
    assert!(sessions.status.success(), "{sessions:?}");
    let out = String::from_utf8_lossy(&sessions.stdout);
    assert!(
        out.contains("\"spark-1\" deleted") && out.contains("\"spark-2\" deleted"),
        "{out}"
    );
    assert_eq!(
        lrs_names(&cluster),
        ["model-2"],
        "only the selected are gone"
    );
}

/// Without an operator (it is down), the finalizer holds: kubectl's wait gives up after its
/// `--timeout` with the object still there, as on a real cluster.
#[tokio::test]
async fn without_the_operator_the_finalizer_holds_the_lrs() {
    let cluster = Cluster::start(FakeKubeOptions {
        lrs_operator_delay: None,
        ..FakeKubeOptions::default()
    })
    .await;
    cluster
        .kube
        .insert(operated_lrs("dr-app", "model-1", "deployment"))
        .unwrap();
    let output = kubectl_within(
        &cluster,
        &["delete", "lrs", "-n", "dr-app", "model-1", "--timeout=2s"],
        Duration::from_secs(60),
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("timed out waiting"), "{stderr}");
    let held = cluster.kube.get("lrs", Some("dr-app"), "model-1").unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
}

/// A kubeconfig for `cluster` whose server is `https://cluster.invalid:PORT`, a name only the
/// test proxy resolves (the certificate checked for `localhost` with `tls-server-name`).
fn hidden_kubeconfig(cluster: &Cluster, name: &str, proxy_url: Option<&str>) -> PathBuf {
    let mut config: Value =
        serde_yaml::from_str(&cluster.kube.kubeconfig_yaml("fake", Some("default"))).unwrap();
    let port = cluster.kube.url().rsplit(':').next().unwrap().to_string();
    let entry = &mut config["clusters"][0]["cluster"];
    entry["server"] = json!(format!("https://cluster.invalid:{port}"));
    entry["tls-server-name"] = json!("localhost");
    if let Some(url) = proxy_url {
        entry["proxy-url"] = json!(url);
    }
    cluster.manifest(name, &config)
}

/// The test kit's proxy against kubectl's own proxy support (the behaviour the plugin follows):
/// `proxy-url` of each scheme, `HTTPS_PROXY`, `NO_PROXY`, loopback servers direct.
#[tokio::test]
async fn kubectl_reaches_a_server_only_the_proxy_resolves() {
    use mlbackup_testkit::proxy::{ProxyKind, TestProxy};
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster
        .kube
        .insert(lrs("dr-app", "model-1", "deployment"))
        .unwrap();
    let names = [("cluster.invalid", std::net::IpAddr::from([127, 0, 0, 1]))];
    let port = cluster.kube.url().rsplit(':').next().unwrap().to_string();
    let tunnel = format!("cluster.invalid:{port}");
    let get = |kubeconfig: &Path, env: &[(&str, &str)]| {
        let mut command = cluster.command(kubectl());
        command
            .args(["--request-timeout=10s", "get", "lrs", "-A", "-o", "name"])
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tokio::task::spawn_blocking(move || command.output().expect("kubectl runs"))
    };

    let tls = cluster.kube.tls_config().unwrap();
    for kind in [ProxyKind::Http, ProxyKind::Https(tls), ProxyKind::Socks5] {
        let proxy = TestProxy::start(kind, &names).await.unwrap();
        let kubeconfig = hidden_kubeconfig(&cluster, "proxied", Some(&proxy.url()));
        let output = get(&kubeconfig, &[]).await.unwrap();
        assert!(output.status.success(), "{}: {output:?}", proxy.url());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "longrunningservice.lrs.datarobot.com/model-1\n"
        );
        let tunnels = proxy.tunnels();
        assert!(
            !tunnels.is_empty() && tunnels.iter().all(|t| *t == tunnel),
            "{tunnels:?}"
        );
    }

    let proxy = TestProxy::start(ProxyKind::Http, &names).await.unwrap();
    let url = proxy.url();
    let hidden = hidden_kubeconfig(&cluster, "hidden", None);
    let through = get(&hidden, &[("HTTPS_PROXY", &url)]).await.unwrap();
    assert!(through.status.success(), "{through:?}");
    let used = proxy.tunnels().len();
    assert!(used > 0);
    let bypassed = get(&hidden, &[("HTTPS_PROXY", &url), ("NO_PROXY", ".invalid")])
        .await
        .unwrap();
    assert!(!bypassed.status.success(), "NO_PROXY sends it direct");
    let pinned = hidden_kubeconfig(&cluster, "pinned", Some(&url));
    let output = get(
        &pinned,
        &[("HTTPS_PROXY", &url), ("NO_PROXY", "cluster.invalid")],
    )
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "proxy-url ignores NO_PROXY: {output:?}"
    );
    let used = proxy.tunnels().len();
    let loopback = get(&cluster.kubeconfig, &[("HTTPS_PROXY", &url)])
        .await
        .unwrap();
    assert!(loopback.status.success(), "{loopback:?}");
    assert_eq!(
        proxy.tunnels().len(),
        used,
        "a loopback server is reached directly"
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    let output = cluster
        .kubectl(&["get", "lrs", "-A", "--token", "not-the-token"])
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("provide credentials"),
        "{stderr}"
    );
}

#[tokio::test]
async fn auth_can_i_follows_the_access_rules() {
    use mlbackup_testkit::kube::access::DenyRule;
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    let answer = cluster
        .kubectl(&["auth", "can-i", "list", "lrs.lrs.datarobot.com", "-A"])
        .await;
    assert_eq!(String::from_utf8_lossy(&answer.stdout).trim(), "yes");
    cluster
        .kube
        .access()
        .deny(DenyRule::new("list", "lrs.datarobot.com", "lrs"));
    let answer = cluster
        .kubectl(&["auth", "can-i", "list", "lrs.lrs.datarobot.com", "-A"])
        .await;
    assert_eq!(String::from_utf8_lossy(&answer.stdout).trim(), "no");
    let output = cluster.kubectl(&["get", "lrs", "-A"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "cannot list resource \"lrs\" in API group \"lrs.datarobot.com\" at the cluster scope"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn exec_into_the_app_deployment_relays_streams_and_the_exit_code() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster
        .kube
        .add_app_deployment("dr-core", "mmapp-app", 1)
        .unwrap();
    let output = cluster
        .kubectl_with_input(
            &[
                "exec",
                "-i",
                "deploy/mmapp-app",
                "-n",
                "dr-core",
                "--",
                "sh",
                "-c",
                "cat; echo err >&2; exit 3",
            ],
            Some("from stdin\n"),
        )
        .await;
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from stdin\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert_eq!(output.status.code(), Some(3), "{stderr}");

    let hi = cluster
        .kubectl_with_input(
            &[
                "exec",
                "-i",
                "-n",
                "dr-core",
                "deploy/mmapp-app",
                "--",
                "echo",
                "hi",
            ],
            Some(""),
        )
        .await;
    assert!(
        hi.status.success(),
        "{}",
        String::from_utf8_lossy(&hi.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&hi.stdout), "hi\n");
}

#[tokio::test]
async fn exec_is_refused_without_permission_and_for_a_pod_that_is_not_running() {
    use mlbackup_testkit::kube::access::DenyRule;
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.create_namespace("dr-core");
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "starting", "namespace": "dr-core"},
        "spec": {"containers": [{"name": "app", "image": "x"}], "nodeName": "node-1"},
        "status": {"phase": "Pending"},
    });
    cluster.kube.insert(pod.clone()).unwrap();
    let output = cluster
        .kubectl(&["exec", "-n", "dr-core", "starting", "--", "true"])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("container not found (\"app\")"), "{stderr}");

    pod["metadata"]["name"] = json!("running");
    pod["status"] = json!({"phase": "Running"});
    cluster.kube.insert(pod).unwrap();
    cluster
        .kube
        .access()
        .deny(DenyRule::new("create", "", "pods").subresource("exec"));
    let output = cluster
        .kubectl(&["exec", "-n", "dr-core", "running", "--", "true"])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "cannot create resource \"pods/exec\" in API group \"\" in the namespace \"dr-core\""
        ),
        "{stderr}"
    );
}

/// What `kubectl mlbackup schedule install` relies on, through the real kubectl: Secrets,
/// ServiceAccounts, ConfigMaps, CronJobs and Jobs applied and read back; a Job made from the
/// CronJob's template runs in the sandbox's kubelet (its container a local process with the
/// Secret and the ConfigMap in its env), `kubectl wait` sees it complete and `kubectl logs`
/// reads its pod's log. (kubectl's typed `create job ...` sends a protobuf body, which the fake
/// decodes only for the kinds of `kubectl_create.rs`; manifests go as JSON.)
#[tokio::test]
async fn kubectl_runs_a_job_from_a_cron_job_and_reads_its_log() {
    let cluster = Cluster::start(FakeKubeOptions::default()).await;
    cluster.kube.map_image("busybox", Path::new("/bin/sh"));
    cluster.kube.create_namespace("batch");
    let container = json!({"name": "main", "image": "busybox", "args": ["-c", "echo \"$GREETING $KEY\""],
        "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "KEY"}}}]});
    let pod_spec = json!({"serviceAccountName": "runner", "restartPolicy": "Never", "containers": [container]});
    let objects = [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "batch"}, "stringData": {"KEY": "s3cret"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "batch"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "batch"}, "data": {"greeting": "hello"}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "batch"},
         "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}}}),
    ];
    let mut applied = String::new();
    for (index, object) in objects.iter().enumerate() {
        let path = cluster.manifest(&format!("object-{index}.yaml"), object);
        applied.push_str(
            &cluster
                .kubectl_ok(&["apply", "-f", path.to_str().unwrap()])
                .await,
        );
    }
    assert_eq!(
        applied,
        "secret/keys created\nserviceaccount/runner created\nconfigmap/settings created\ncronjob.batch/nightly created\n"
    );
    let stored = cluster
        .kubectl_ok(&[
            "get",
            "secret",
            "keys",
            "-n",
            "batch",
            "-o",
            "jsonpath={.data.KEY}",
        ])
        .await;
    assert_eq!(stored, "czNjcmV0");
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "now", "namespace": "batch"},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}});
    let path = cluster.manifest("job.yaml", &job);
    let out = cluster
        .kubectl_ok(&["apply", "--server-side", "-f", path.to_str().unwrap()])
        .await;
    assert_eq!(out, "job.batch/now serverside-applied\n");
    let waited = kubectl_within(
        &cluster,
        &[
            "wait",
            "-n",
            "batch",
            "--for=condition=complete",
            "job/now",
            "--timeout=60s",
        ],
        Duration::from_secs(90),
    )
    .await;
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout),
        "job.batch/now condition met\n"
    );
    let log = cluster
        .kubectl_ok(&["logs", "-n", "batch", "job/now"])
        .await;
    assert_eq!(log, "hello s3cret\n");
    let job = cluster.kube.get("jobs", Some("batch"), "now").unwrap();
    assert_eq!(job["status"]["succeeded"], 1);
}
