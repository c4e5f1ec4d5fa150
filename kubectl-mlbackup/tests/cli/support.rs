//! Running the plugin binary in a sealed environment and normalising its output for snapshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use mlbackup_testkit::wait::wait_until;
use mlbackup_testkit::world::{App, Deployments, World, WorldBuilder};

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

    /// [`Sandbox::env`] when there is a value (a path).
    pub fn env_if(self, key: &str, value: Option<&Path>) -> Self {
        match value {
            Some(path) => self.env(key, path.to_str().unwrap()),
            None => self,
        }
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
    /// util-linux `script`), typing `input` at its `[y/N]` prompt (nothing when it ends without
    /// one); `None` when `script` is not installed on a developer's machine (a failure under
    /// CI). Both output streams arrive merged in `stdout`, as the terminal shows them (the
    /// typed input echoed after the prompt), with terminal line ends.
    pub fn run_on_terminal(&self, args: &[&str], input: &str) -> Option<Run> {
        let quote = |arg: &str| format!("'{}'", arg.replace('\'', r"'\''"));
        let command_line = std::iter::once(env!("CARGO_BIN_EXE_kubectl-mlbackup"))
            .chain(args.iter().copied())
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let script =
            mlbackup_testkit::tools::optional("script", "util-linux; the terminal prompts")?;
        let mut command = Command::new(script);
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
        let mut child = command.spawn().expect("run script");
        // The input is typed once the prompt shows, as a person types it: typed earlier, the
        // terminal would echo it before the prompt or after it, as the processes happen to run.
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (prompted, prompt) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut shown = Vec::new();
            let mut chunk = [0; 4096];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => return shown,
                    Ok(n) => shown.extend_from_slice(&chunk[..n]),
                }
                // The prompt of `Printer::confirm`.
                if shown.ends_with(b"[y/N] ") {
                    let _ = prompted.send(());
                }
            }
        });
        // An error: the output ended without a prompt, and nothing is typed.
        if prompt.recv().is_ok() {
            use std::io::Write;
            stdin.write_all(input.as_bytes()).expect("type the input");
        }
        drop(stdin);
        let stdout = reader.join().expect("read the terminal");
        let mut output = child.wait_with_output().expect("run script");
        output.stdout = stdout;
        Some(Run::from(output))
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

    /// The run as [`mlbackup_testkit::assert_run_snapshot`] snapshots it: exit code, stdout and
    /// stderr, the sandbox's HOME as `[HOME]` and the build's directory (where the plugin and
    /// the helper are) as `[TARGET]`.
    pub fn shown(&self, sandbox: &Sandbox) -> String {
        let target = Path::new(env!("CARGO_BIN_EXE_kubectl-mlbackup"))
            .parent()
            .expect("the plugin is in a directory");
        mlbackup_testkit::snapshot::render(
            self.code,
            &self.stdout,
            &self.stderr,
            Some(sandbox.home()),
        )
        .replace(&target.display().to_string(), "[TARGET]")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A fake Kubernetes API server (in this process, on its own runtime) seeded with sample LRSes,
/// and a kubeconfig for it in the sealed HOME: the cluster of a test kit [`World`]. Its `kube`,
/// `kubeconfig` and `sample` are the world's.
pub struct FakeCluster {
    world: Arc<World>,
}

impl std::ops::Deref for FakeCluster {
    type Target = mlbackup_testkit::world::Cluster;

    fn deref(&self) -> &Self::Target {
        self.world.cluster()
    }
}

/// The world builder for a fake cluster in `sandbox`'s HOME.
pub fn in_sandbox(sandbox: &Sandbox) -> WorldBuilder {
    World::builder().home(sandbox.home())
}

/// Starts `world` (on a runtime of its own) and hands out its cluster and its DataRobot API.
pub fn start_world(world: WorldBuilder) -> (FakeCluster, FakeApi) {
    let world = Arc::new(world.build());
    (
        FakeCluster {
            world: world.clone(),
        },
        FakeApi { world },
    )
}

impl FakeCluster {
    /// Starts a cluster with `spec`'s population, serving the LRS at `options.lrs_version`.
    pub fn start(
        sandbox: &Sandbox,
        spec: mlbackup_testkit::sample::SampleSpec,
        options: mlbackup_testkit::kube::FakeKubeOptions,
    ) -> FakeCluster {
        FakeCluster::of(in_sandbox(sandbox).cluster(spec).kube_options(options))
    }

    /// The cluster of a world built with `.cluster(...)`.
    pub fn of(world: WorldBuilder) -> FakeCluster {
        FakeCluster {
            world: Arc::new(world.build()),
        }
    }

    /// A cluster without any LRS (and without the sample's namespaces), its kubeconfig written
    /// to `kubeconfig` in the sandbox: a second cluster next to a populated one.
    pub fn empty(sandbox: &Sandbox, kubeconfig: &str) -> FakeCluster {
        FakeCluster::of(in_sandbox(sandbox).empty_cluster().kubeconfig(kubeconfig))
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
        FakeCluster::of(
            in_sandbox(sandbox)
                .cluster(mlbackup_testkit::sample::SampleSpec {
                    lrs: 2,
                    ..Default::default()
                })
                .kube_options(mlbackup_testkit::kube::FakeKubeOptions {
                    controller_delay,
                    ..Default::default()
                })
                .app(App::Workloads),
        )
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
        self.world.block_on(async move {
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
        wait_until(
            &format!("{namespace}/{name} is gone after its deletion"),
            std::time::Duration::from_secs(30),
            || self.kube.get("lrs", Some(namespace), name).is_none(),
        );
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
/// (ids `object_id(n)`), the first `active` of them active; its CA in the sealed HOME. Its
/// `datarobot`, `ca_file` and `statuses()` are the world's.
pub struct FakeApi {
    world: Arc<World>,
}

impl std::ops::Deref for FakeApi {
    type Target = mlbackup_testkit::world::Api;

    fn deref(&self) -> &Self::Target {
        self.world.api()
    }
}

impl FakeApi {
    pub fn start(
        sandbox: &Sandbox,
        active: usize,
        inactive: usize,
        options: mlbackup_testkit::datarobot::FakeDataRobotOptions,
    ) -> FakeApi {
        FakeApi {
            world: Arc::new(
                in_sandbox(sandbox)
                    .datarobot(Deployments::Numbered { active, inactive }, options)
                    .build(),
            ),
        }
    }

    /// The sandbox's environment pointed at this API with `token`, as an operator sets it.
    pub fn configure(&self, sandbox: Sandbox, token: &str) -> Sandbox {
        sandbox
            .env("LRS_DATAROBOT_URL", self.datarobot.url())
            .env("LRS_DATAROBOT_API_TOKEN", token)
            .env_if("SSL_CERT_FILE", self.ca_file.as_deref())
    }
}

/// A new directory a scheduled run's pod writes through to this machine: the pod's `/tmp` is its
/// own scratch `emptyDir` (read-only root file system), so a folder under `/tmp` would be written
/// inside the pod. The target's temporary directory, unless the checkout itself is under `/tmp`
/// (then `/var/tmp`).
pub fn dir_outside_the_pods_tmp() -> tempfile::TempDir {
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let parent = if target.starts_with("/tmp") {
        std::path::Path::new("/var/tmp")
    } else {
        target
    };
    tempfile::tempdir_in(parent).unwrap()
}
