//! The sandbox: a fake Kubernetes cluster and a fake DataRobot API started together, seeded with
//! sample data that looks like a real install, and a kubeconfig that points at them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::datarobot::{DeploymentSeed, DeploymentStatus, FakeDataRobot, FakeDataRobotOptions};
use crate::faults::{Fault, FaultRule};
use crate::kube::{AppWorkload, FakeKube, FakeKubeOptions};
use crate::sample::{self, Sample, SampleSpec};

/// The kubeconfig context the sandbox writes.
pub const CONTEXT: &str = "sandbox";
/// The app deployment the runbook execs into.
pub const APP_DEPLOYMENT: &str = "mmapp-app";

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    pub sample: SampleSpec,
    /// The version the LRS resource is served at (clients must discover it).
    pub lrs_version: String,
    /// Extra latency of every DataRobot API request.
    pub dr_latency: Option<Duration>,
    /// Largest page the fake API server returns (forces pagination).
    pub max_page_size: Option<usize>,
    /// Where the kubeconfig (and the DataRobot CA file beside it) is written.
    pub kubeconfig: PathBuf,
    /// Per-pod working directories of exec'd processes.
    pub pods_root: PathBuf,
    /// How long the simulated LRS operator takes to release its finalizer from a deleted LRS
    /// (`None`: no operator, the finalizer holds).
    pub lrs_operator_delay: Option<Duration>,
}

/// The readiness message: one JSON line on stdout, a contract other tools read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    pub kubeconfig: PathBuf,
    pub context: String,
    pub datarobot_url: String,
    pub datarobot_token: String,
    pub app_namespace: String,
    /// The CA that signed the fake DataRobot API's certificate (PEM file).
    pub datarobot_ca_file: Option<PathBuf>,
}

/// Both fakes, running, and what was seeded into them.
pub struct Sandbox {
    pub kube: FakeKube,
    pub datarobot: FakeDataRobot,
    pub sample: Sample,
    pub ready: Ready,
}

impl Sandbox {
    pub async fn start(options: SandboxOptions) -> anyhow::Result<Sandbox> {
        let kube = FakeKube::start(FakeKubeOptions {
            lrs_version: options.lrs_version.clone(),
            max_page_size: options.max_page_size,
            pods_root: options.pods_root.clone(),
            lrs_operator_delay: options.lrs_operator_delay,
            ..FakeKubeOptions::default()
        })
        .await
        .context("cannot start the fake Kubernetes API server")?;
        let datarobot = FakeDataRobot::start(FakeDataRobotOptions::default())
            .await
            .context("cannot start the fake DataRobot API")?;
        if let Some(latency) = options.dr_latency {
            datarobot
                .faults()
                .add(FaultRule::new("", Fault::Latency(latency), None));
        }

        let sample = sample::generate(&options.sample, &options.lrs_version);
        for namespace in ["default", "kube-system"]
            .into_iter()
            .chain(sample.namespaces.iter().map(String::as_str))
        {
            kube.create_namespace(namespace);
        }
        for object in &sample.lrs {
            kube.insert(object.clone())
                .context("cannot seed an LRS into the fake cluster")?;
        }
        seed_app_workloads(&kube, &options.sample.app_namespace)
            .context("cannot seed the app's workloads")?;
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

        kube.write_kubeconfig(&options.kubeconfig, CONTEXT, None)
            .with_context(|| format!("cannot write {}", options.kubeconfig.display()))?;
        let datarobot_ca_file = match datarobot.ca_pem() {
            Some(pem) => {
                let path = sibling(&options.kubeconfig, "datarobot-ca.pem");
                std::fs::write(&path, pem)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let ready = Ready {
            kubeconfig: options.kubeconfig.clone(),
            context: CONTEXT.to_string(),
            datarobot_url: datarobot.url(),
            datarobot_token: datarobot.admin_token().to_string(),
            app_namespace: options.sample.app_namespace.clone(),
            datarobot_ca_file,
        };
        Ok(Sandbox {
            kube,
            datarobot,
            sample,
            ready,
        })
    }
}

/// The app's Helm release, as the label `release` (older charts) or
/// `app.kubernetes.io/instance` (newer ones) names it.
pub const APP_RELEASE: &str = "dr";

/// The workloads of a DataRobot install in its namespace: the app's Deployments and a
/// StatefulSet of the `dr` release (labelled `release=dr`, or `app.kubernetes.io/instance=dr`
/// like newer charts), and the persistent services of the `pcs` release (the pgpool connection
/// pooler the runbook stops by name, and a database that stays up for the backups).
pub fn app_workloads(namespace: &str) -> Vec<AppWorkload> {
    vec![
        AppWorkload::deployment(namespace, APP_DEPLOYMENT, 1).label("release", APP_RELEASE),
        AppWorkload::deployment(namespace, "mmapp-worker", 3).label("release", APP_RELEASE),
        AppWorkload::deployment(namespace, "datarobot-prediction-server", 2)
            .label("app.kubernetes.io/instance", APP_RELEASE),
        AppWorkload::stateful_set(namespace, "mmapp-scheduler", 1).label("release", APP_RELEASE),
        AppWorkload::deployment(namespace, "pcs-pgpool", 2).label("release", "pcs"),
        AppWorkload::stateful_set(namespace, "pcs-mongo", 3).label("release", "pcs"),
    ]
}

/// Seeds [`app_workloads`] with their running pods.
pub fn seed_app_workloads(kube: &FakeKube, namespace: &str) -> anyhow::Result<()> {
    for workload in app_workloads(namespace) {
        kube.add_app_workload(&workload)
            .with_context(|| format!("cannot seed the workload {}", workload.name))?;
    }
    Ok(())
}

fn sibling(path: &Path, name: &str) -> PathBuf {
    path.parent()
        .map(|dir| dir.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A `mlbackup-sandbox serve` child process, for tests and benchmarks that use the binary as
/// users do. Killed when dropped.
pub struct SandboxProcess {
    child: std::process::Child,
    pub ready: Ready,
    pub ready_line: String,
}

impl SandboxProcess {
    /// Starts `binary serve --kubeconfig <dir>/kubeconfig ARGS` and waits for its ready line.
    pub fn spawn(binary: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<SandboxProcess> {
        use std::io::BufRead;
        let kubeconfig = dir.join("kubeconfig");
        let mut child = std::process::Command::new(binary)
            .arg("serve")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut ready_line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut ready_line)
            .context("cannot read the sandbox's ready line")?;
        let ready: Ready = match serde_json::from_str(&ready_line) {
            Ok(ready) => ready,
            Err(err) => {
                let _ = child.kill();
                anyhow::bail!(
                    "the sandbox's first line is not its ready message ({err}): {ready_line:?}"
                );
            }
        };
        Ok(SandboxProcess {
            child,
            ready,
            ready_line,
        })
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
