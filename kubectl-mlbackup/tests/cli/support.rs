//! Running the plugin binary in a sealed environment and normalising its output for snapshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary HOME (so `~/.kube/config` and caches are the test's own) and the environment
/// the plugin will see: nothing from the developer's shell leaks in.
pub struct Sandbox {
    pub home: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            home: tempfile::tempdir().expect("temp HOME"),
            envs: Vec::new(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.envs
            .push((key.to_string(), value.as_ref().to_string()));
        self
    }

    /// A path inside the temporary HOME.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.home.path().join(relative)
    }

    /// Starts `kubectl-mlbackup ARGS` without waiting, stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut command = self.command(args);
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().expect("start kubectl-mlbackup")
    }

    /// Runs `kubectl-mlbackup ARGS` and returns what it did.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run kubectl-mlbackup"))
    }

    /// The plugin command in the sealed environment: only PATH and the test's own variables.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-mlbackup"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .current_dir(self.home.path());
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }
}

impl Sandbox {
    /// Runs `kubectl-mlbackup ARGS` with stdin, stdout and stderr on a pseudo-terminal (through
    /// util-linux `script`), typing `input`; `None` when `script` is not installed. Both output
    /// streams arrive merged in `stdout`, with terminal line ends.
    pub fn run_on_terminal(&self, args: &[&str], input: &str) -> Option<Run> {
        let quote = |arg: &str| format!("'{}'", arg.replace('\'', r"'\''"));
        let command_line = std::iter::once(env!("CARGO_BIN_EXE_kubectl-mlbackup"))
            .chain(args.iter().copied())
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = Command::new("script");
        command
            .args(["-qec", &command_line, "/dev/null"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .current_dir(self.home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        let mut child = command.spawn().ok()?;
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("type the input");
        Some(Run::from(child.wait_with_output().expect("run script")))
    }
}

/// The result of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with both streams when the exit code is not the expected one.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A fake Kubernetes API server (in this process, on its own runtime) seeded with sample LRSes,
/// and a kubeconfig for it in the sealed HOME.
pub struct FakeCluster {
    pub kube: mlbackup_testkit::kube::FakeKube,
    pub kubeconfig: PathBuf,
    pub sample: mlbackup_testkit::sample::Sample,
    // Last: the servers' tasks live on it.
    _runtime: tokio::runtime::Runtime,
}

impl FakeCluster {
    /// Starts a cluster with `spec`'s population, serving the LRS at `options.lrs_version`.
    pub fn start(
        sandbox: &Sandbox,
        spec: mlbackup_testkit::sample::SampleSpec,
        options: mlbackup_testkit::kube::FakeKubeOptions,
    ) -> FakeCluster {
        FakeCluster::start_as(sandbox, spec, options, "kubeconfig")
    }

    /// A cluster without any LRS (and without the sample's namespaces), its kubeconfig written
    /// to `kubeconfig` in the sandbox: a second cluster next to a populated one.
    pub fn empty(sandbox: &Sandbox, kubeconfig: &str) -> FakeCluster {
        FakeCluster::start_as(
            sandbox,
            mlbackup_testkit::sample::SampleSpec {
                lrs: 0,
                spark: 0,
                other: 0,
                namespaces: 1,
                app_namespace: "default".into(),
                ..Default::default()
            },
            Default::default(),
            kubeconfig,
        )
    }

    /// [`FakeCluster::start`] with the kubeconfig written to `kubeconfig` in the sandbox.
    pub fn start_as(
        sandbox: &Sandbox,
        spec: mlbackup_testkit::sample::SampleSpec,
        mut options: mlbackup_testkit::kube::FakeKubeOptions,
        kubeconfig: &str,
    ) -> FakeCluster {
        mlbackup_testkit::tls::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        options.pods_root = sandbox.path("pods");
        let lrs_version = options.lrs_version.clone();
        let kube = runtime
            .block_on(mlbackup_testkit::kube::FakeKube::start(options))
            .expect("start the fake API server");
        let sample = mlbackup_testkit::sample::generate(&spec, &lrs_version);
        for namespace in ["default"]
            .into_iter()
            .chain(sample.namespaces.iter().map(String::as_str))
        {
            kube.create_namespace(namespace);
        }
        for object in &sample.lrs {
            kube.insert(object.clone()).expect("seed an LRS");
        }
        let kubeconfig = sandbox.path(kubeconfig);
        kube.write_kubeconfig(&kubeconfig, "fake", Some(&spec.app_namespace))
            .unwrap();
        FakeCluster {
            kube,
            kubeconfig,
            sample,
            _runtime: runtime,
        }
    }

    /// The default population: LRSes of several types over `namespaces` namespaces.
    pub fn with_lrs(sandbox: &Sandbox, lrs: usize, namespaces: usize) -> FakeCluster {
        FakeCluster::start(
            sandbox,
            mlbackup_testkit::sample::SampleSpec {
                lrs,
                namespaces,
                ..Default::default()
            },
            Default::default(),
        )
    }

    /// A cluster with a few LRSes and the app's workloads of the sandbox in `dr-app` (the
    /// context's namespace) with their pods; its controllers react after `controller_delay`.
    pub fn with_app(sandbox: &Sandbox, controller_delay: std::time::Duration) -> FakeCluster {
        let cluster = FakeCluster::start(
            sandbox,
            mlbackup_testkit::sample::SampleSpec {
                lrs: 2,
                ..Default::default()
            },
            mlbackup_testkit::kube::FakeKubeOptions {
                controller_delay,
                ..Default::default()
            },
        );
        mlbackup_testkit::sandbox::seed_app_workloads(&cluster.kube, "dr-app")
            .expect("seed the app's workloads");
        cluster
    }

    /// Every Deployment and StatefulSet of `dr-app` by `deployment/NAME` or `statefulset/NAME`.
    pub fn workloads(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut all = std::collections::BTreeMap::new();
        for (plural, kind) in [
            ("deployments", "deployment"),
            ("statefulsets", "statefulset"),
        ] {
            for object in self.kube.list(plural, Some("dr-app")) {
                let name = object["metadata"]["name"].as_str().unwrap().to_string();
                all.insert(format!("{kind}/{name}"), object);
            }
        }
        all
    }

    /// The names of the pods of `dr-app`.
    pub fn pod_names(&self) -> Vec<String> {
        self.kube
            .list("pods", Some("dr-app"))
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The kubeconfig flag pair, for `Sandbox::run`.
    pub fn kubeconfig_arg(&self) -> String {
        format!("--kubeconfig={}", self.kubeconfig.display())
    }

    /// Sends one request as another client would (kube-rs, manager `someone-else`) and returns
    /// the answer or the API server's error message.
    pub fn request(&self, request: http::Request<Vec<u8>>) -> Result<serde_json::Value, String> {
        let kubeconfig = self.kubeconfig.clone();
        self._runtime.block_on(async move {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&kubeconfig).map_err(|e| e.to_string())?,
                &Default::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
            client
                .request::<serde_json::Value>(request)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// Merge-patches a live LRS as another field manager would (an operator, a person).
    pub fn merge_patch(&self, namespace: &str, name: &str, patch: serde_json::Value) {
        let request = kube::core::Request::new(format!(
            "/apis/lrs.datarobot.com/v1/namespaces/{namespace}/lrs"
        ))
        .patch(
            name,
            &kube::api::PatchParams {
                field_manager: Some("someone-else".into()),
                ..Default::default()
            },
            &kube::api::Patch::Merge(&patch),
        )
        .unwrap();
        self.request(request).expect("patch the LRS");
    }

    /// Deletes an LRS as `kubectl delete lrs -n NAMESPACE NAME` does: the DELETE, then a wait
    /// until it is gone (the cluster's LRS operator releases its finalizer shortly after).
    pub fn delete_lrs(&self, namespace: &str, name: &str) {
        let request = kube::core::Request::new(format!(
            "/apis/lrs.datarobot.com/v1/namespaces/{namespace}/lrs"
        ))
        .delete(name, &Default::default())
        .unwrap();
        self.request(request).expect("delete the LRS");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.kube.get("lrs", Some(namespace), name).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "{namespace}/{name} is still there 30s after its deletion"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `resourceVersion` of every LRS, by `namespace/name`.
    pub fn resource_versions(&self) -> std::collections::BTreeMap<String, String> {
        self.kube
            .list("lrs", None)
            .into_iter()
            .map(|o| {
                (
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap(),
                        o["metadata"]["name"].as_str().unwrap()
                    ),
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    /// How many requests could have changed something (anything but GET).
    pub fn writes(&self) -> usize {
        self.kube.requests().count(|r| r.method != "GET")
    }

    /// The object as the API server serves it, without managedFields (as kubectl shows it).
    pub fn served(&self, namespace: &str, name: &str) -> serde_json::Value {
        let mut object = self
            .kube
            .get("lrs", Some(namespace), name)
            .expect("object exists");
        object["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        object
    }
}

/// A fake DataRobot API (in this process, on its own runtime) with deployments `model-0000`...
/// (ids `object_id(n)`), the first `active` of them active; its CA in the sealed HOME.
pub struct FakeApi {
    pub datarobot: mlbackup_testkit::datarobot::FakeDataRobot,
    pub ca_file: PathBuf,
    // Last: the server's tasks live on it.
    _runtime: tokio::runtime::Runtime,
}

impl FakeApi {
    pub fn start(
        sandbox: &Sandbox,
        active: usize,
        inactive: usize,
        options: mlbackup_testkit::datarobot::FakeDataRobotOptions,
    ) -> FakeApi {
        use mlbackup_testkit::datarobot::{DeploymentSeed, DeploymentStatus, object_id};
        mlbackup_testkit::tls::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let datarobot = runtime
            .block_on(mlbackup_testkit::datarobot::FakeDataRobot::start(options))
            .expect("start the fake DataRobot API");
        for n in 0..active + inactive {
            let status = if n < active {
                DeploymentStatus::Active
            } else {
                DeploymentStatus::Inactive
            };
            datarobot.add_deployment(DeploymentSeed {
                id: object_id(n as u64),
                ..DeploymentSeed::new(format!("model-{n:04}"), status)
            });
        }
        let ca_file = sandbox.path("datarobot-ca.pem");
        // None when the options ask for plain HTTP.
        if let Some(pem) = datarobot.ca_pem() {
            std::fs::write(&ca_file, pem).unwrap();
        }
        FakeApi {
            datarobot,
            ca_file,
            _runtime: runtime,
        }
    }

    /// The sandbox's environment pointed at this API with `token`, as an operator sets it.
    pub fn configure(&self, sandbox: Sandbox, token: &str) -> Sandbox {
        sandbox
            .env("LRS_DATAROBOT_URL", self.datarobot.url())
            .env("LRS_DATAROBOT_API_TOKEN", token)
            .env("SSL_CERT_FILE", self.ca_file.to_str().unwrap())
    }

    /// Each deployment's current status, in id order.
    pub fn statuses(&self) -> Vec<(String, mlbackup_testkit::datarobot::DeploymentStatus)> {
        let mut all: Vec<_> = self
            .datarobot
            .deployments()
            .into_iter()
            .map(|d| (d.id, d.status))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
