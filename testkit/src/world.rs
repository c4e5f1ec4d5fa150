//! One way to assemble a fake world for a test: a private HOME, the fake Kubernetes API server
//! seeded with sample LRSes (and the app's workloads when asked) with a kubeconfig for it, the
//! fake DataRobot API with deployments and its CA file, and the sealed environment a client run
//! in that world sees. The CLI tests, the helper's tests, the conformance tests and the sandbox
//! binary all build their worlds here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::datarobot::{
    DeploymentSeed, DeploymentStatus, FakeDataRobot, FakeDataRobotOptions, object_id,
};
use crate::kube::{FakeKube, FakeKubeOptions};
use crate::sample::{self, Sample, SampleSpec};

/// Which of the app's workloads the cluster runs in the app namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum App {
    /// None: the cluster holds LRSes only.
    #[default]
    None,
    /// The `mmapp-app` Deployment with one pod: where the plugin runs its helper.
    Pod,
    /// Every workload of [`crate::sandbox::app_workloads`] with its pods: what `app stop`
    /// and `prepare` scale down.
    Workloads,
}

/// Which deployments the fake DataRobot API holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployments {
    /// `model-0000`, `model-0001`... with ids `object_id(n)`, the first `active` of them active.
    Numbered { active: usize, inactive: usize },
    /// The sample's deployments (labels, descriptions, importance, creation times).
    Sample,
}

/// Options of a [`World`]; start with [`World::builder`].
#[derive(Debug, Clone)]
pub struct WorldBuilder {
    home: Option<PathBuf>,
    cluster: Option<ClusterSetup>,
    datarobot: Option<(Deployments, FakeDataRobotOptions)>,
}

#[derive(Debug, Clone)]
struct ClusterSetup {
    sample: SampleSpec,
    options: FakeKubeOptions,
    app: App,
    kubeconfig: PathBuf,
    context: String,
    /// The kubeconfig context's namespace; `None` for none (the default namespace).
    namespace: Option<String>,
    namespaces: Vec<String>,
    /// Working directories of exec'd processes; `None`: `HOME/pods`.
    pods_root: Option<PathBuf>,
}

impl WorldBuilder {
    /// Uses `dir` as HOME (files of the world go there) instead of a fresh temporary directory
    /// the world owns: a second cluster beside a first one, a sandbox serving from a folder.
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = Some(dir.into());
        self
    }

    /// A fake Kubernetes API server seeded with `sample`'s LRSes and namespaces (and
    /// `default`); its kubeconfig is `HOME/kubeconfig`, context `fake`, with the sample's app
    /// namespace as the context's namespace.
    pub fn cluster(mut self, sample: SampleSpec) -> Self {
        self.cluster = Some(ClusterSetup {
            namespace: Some(sample.app_namespace.clone()),
            sample,
            options: FakeKubeOptions::default(),
            app: App::None,
            kubeconfig: PathBuf::from("kubeconfig"),
            context: "fake".into(),
            namespaces: vec!["default".into()],
            pods_root: None,
        });
        self
    }

    /// A cluster without LRSes (namespace `default` only, which is also the context's).
    pub fn empty_cluster(self) -> Self {
        self.cluster(SampleSpec {
            lrs: 0,
            spark: 0,
            other: 0,
            namespaces: 1,
            app_namespace: "default".into(),
            ..SampleSpec::default()
        })
    }

    fn cluster_setup(&mut self) -> &mut ClusterSetup {
        self.cluster
            .as_mut()
            .expect("call .cluster(...) before the cluster's options")
    }

    /// The fake API server's options (`pods_root` is replaced: see [`WorldBuilder::pods_root`]).
    pub fn kube_options(mut self, options: FakeKubeOptions) -> Self {
        self.cluster_setup().options = options;
        self
    }

    /// Where the processes exec'd into pods run (default `HOME/pods`).
    pub fn pods_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cluster_setup().pods_root = Some(dir.into());
        self
    }

    /// The app's workloads to run in the sample's app namespace.
    pub fn app(mut self, app: App) -> Self {
        self.cluster_setup().app = app;
        self
    }

    /// Where the kubeconfig goes: relative to HOME, or absolute.
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.cluster_setup().kubeconfig = path.into();
        self
    }

    /// The kubeconfig's context name and its namespace (`None`: none set).
    pub fn context(mut self, name: &str, namespace: Option<&str>) -> Self {
        let setup = self.cluster_setup();
        setup.context = name.into();
        setup.namespace = namespace.map(str::to_string);
        self
    }

    /// Namespaces to create besides `default` and the sample's.
    pub fn namespaces(mut self, names: &[&str]) -> Self {
        let setup = self.cluster_setup();
        setup
            .namespaces
            .extend(names.iter().map(|name| name.to_string()));
        self
    }

    /// A fake DataRobot API with these deployments (over TLS unless the options say
    /// otherwise); its CA is written to `HOME/datarobot-ca.pem`, beside an absolute kubeconfig
    /// if there is one.
    pub fn datarobot(mut self, deployments: Deployments, options: FakeDataRobotOptions) -> Self {
        self.datarobot = Some((deployments, options));
        self
    }

    /// Starts the servers on the caller's async runtime (tests under `#[tokio::test]`).
    pub async fn start(self) -> anyhow::Result<World> {
        crate::tls::install_crypto_provider();
        let home = match self.home {
            Some(dir) => Home::Given(dir),
            None => Home::Owned(tempfile::tempdir().context("cannot make a temporary HOME")?),
        };
        let dir = home.path().to_path_buf();
        let cluster = match self.cluster {
            Some(setup) => Some(start_cluster(setup, &dir).await?),
            None => None,
        };
        let api = match self.datarobot {
            Some((deployments, options)) => {
                let seeds = cluster.as_ref().map(|c| &c.sample);
                let ca_dir = cluster
                    .as_ref()
                    .and_then(|c| c.kubeconfig.parent())
                    .unwrap_or(&dir);
                Some(start_api(deployments, options, seeds, ca_dir).await?)
            }
            None => None,
        };
        Ok(World {
            home,
            cluster,
            api,
            runtime: None,
        })
    }

    /// Starts the servers on a runtime of their own that the world keeps (plain `#[test]`s);
    /// never inside an async runtime.
    pub fn build(self) -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the fake servers");
        let mut world = runtime
            .block_on(self.start())
            .expect("start the fake world");
        world.runtime = Some(runtime);
        world
    }
}

async fn start_cluster(setup: ClusterSetup, home: &Path) -> anyhow::Result<Cluster> {
    let options = FakeKubeOptions {
        pods_root: setup.pods_root.unwrap_or_else(|| home.join("pods")),
        ..setup.options
    };
    let lrs_version = options.lrs_version.clone();
    let kube = FakeKube::start(options)
        .await
        .context("cannot start the fake Kubernetes API server")?;
    let sample = sample::generate(&setup.sample, &lrs_version);
    for namespace in setup
        .namespaces
        .iter()
        .chain(&sample.namespaces)
        .map(String::as_str)
    {
        kube.create_namespace(namespace);
    }
    for object in &sample.lrs {
        kube.insert(object.clone())
            .context("cannot seed an LRS into the fake cluster")?;
    }
    let app_namespace = &setup.sample.app_namespace;
    match setup.app {
        App::None => {}
        App::Pod => kube
            .add_app_deployment(app_namespace, crate::sandbox::APP_DEPLOYMENT, 1)
            .context("cannot seed the app pod")?,
        App::Workloads => crate::sandbox::seed_app_workloads(&kube, app_namespace)?,
    }
    let kubeconfig = home.join(&setup.kubeconfig);
    kube.write_kubeconfig(&kubeconfig, &setup.context, setup.namespace.as_deref())
        .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
    Ok(Cluster {
        kube,
        kubeconfig,
        context: setup.context,
        sample,
    })
}

async fn start_api(
    deployments: Deployments,
    options: FakeDataRobotOptions,
    sample: Option<&Sample>,
    ca_dir: &Path,
) -> anyhow::Result<Api> {
    let datarobot = FakeDataRobot::start(options)
        .await
        .context("cannot start the fake DataRobot API")?;
    match deployments {
        Deployments::Numbered { active, inactive } => {
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
        }
        Deployments::Sample => {
            let sample = sample.context("Deployments::Sample needs a .cluster(sample)")?;
            for deployment in &sample.deployments {
                datarobot.add_deployment(DeploymentSeed {
                    id: deployment.id.clone(),
                    label: deployment.label.clone(),
                    status: if deployment.active {
                        DeploymentStatus::Active
                    } else {
                        DeploymentStatus::Inactive
                    },
                    description: Some(deployment.description.clone()),
                    importance: Some(deployment.importance.clone()),
                    created_at: deployment.created_at,
                });
            }
        }
    }
    // None when the options ask for plain HTTP.
    let ca_file = match datarobot.ca_pem() {
        Some(pem) => {
            let path = ca_dir.join("datarobot-ca.pem");
            std::fs::write(&path, pem)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    Ok(Api { datarobot, ca_file })
}

enum Home {
    Owned(tempfile::TempDir),
    Given(PathBuf),
}

impl Home {
    fn path(&self) -> &Path {
        match self {
            Home::Owned(dir) => dir.path(),
            Home::Given(dir) => dir,
        }
    }
}

/// The fake cluster of a world.
pub struct Cluster {
    pub kube: FakeKube,
    pub kubeconfig: PathBuf,
    pub context: String,
    /// What was seeded (LRSes, namespaces, and the deployments a sandbox seeds).
    pub sample: Sample,
}

/// The fake DataRobot API of a world.
pub struct Api {
    pub datarobot: FakeDataRobot,
    /// The CA of the API's certificate; `None` over plain HTTP.
    pub ca_file: Option<PathBuf>,
}

impl Api {
    /// Each deployment's current status, in id order.
    pub fn statuses(&self) -> Vec<(String, DeploymentStatus)> {
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

/// A running fake world. Dropping it stops the servers (and removes an owned HOME).
pub struct World {
    home: Home,
    cluster: Option<Cluster>,
    api: Option<Api>,
    // Last: the servers' tasks live on it (when the world has its own).
    runtime: Option<tokio::runtime::Runtime>,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            home: None,
            cluster: None,
            datarobot: None,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A path inside HOME.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.home().join(relative)
    }

    /// The fake cluster; panics when the world was built without one.
    pub fn cluster(&self) -> &Cluster {
        self.cluster
            .as_ref()
            .expect("this world has no cluster: build it with .cluster(...)")
    }

    /// The fake DataRobot API; panics when the world was built without one.
    pub fn api(&self) -> &Api {
        self.api
            .as_ref()
            .expect("this world has no DataRobot API: build it with .datarobot(...)")
    }

    pub fn kube(&self) -> &FakeKube {
        &self.cluster().kube
    }

    pub fn datarobot(&self) -> &FakeDataRobot {
        &self.api().datarobot
    }

    /// What a client run in this world sees, as an operator would set it: HOME, KUBECONFIG,
    /// and the DataRobot URL, admin token and CA file.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![("HOME", self.home().as_os_str().to_owned())];
        if let Some(cluster) = &self.cluster {
            env.push(("KUBECONFIG", cluster.kubeconfig.clone().into_os_string()));
        }
        if let Some(api) = &self.api {
            env.push(("LRS_DATAROBOT_URL", api.datarobot.url().into()));
            env.push((
                "LRS_DATAROBOT_API_TOKEN",
                api.datarobot.admin_token().into(),
            ));
            if let Some(ca_file) = &api.ca_file {
                env.push(("SSL_CERT_FILE", ca_file.clone().into_os_string()));
            }
        }
        env
    }

    /// `program` with [`World::env`] and PATH only: nothing from the developer's shell (their
    /// kubeconfig, proxies, tokens) leaks in. Standard input is empty.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env())
            .stdin(std::process::Stdio::null());
        command
    }

    /// The servers, for a world started on the caller's runtime that hands them on (the
    /// sandbox binary); an owned HOME is removed.
    pub fn into_parts(self) -> (Option<Cluster>, Option<Api>) {
        assert!(
            self.runtime.is_none(),
            "the servers of a world built with .build() stop with its runtime"
        );
        (self.cluster, self.api)
    }

    /// Runs `future` on the world's own runtime (a world from [`WorldBuilder::build`]).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("a world built with .build() has a runtime of its own")
            .block_on(future)
    }
}
