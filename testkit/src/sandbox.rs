//! The sandbox: a fake Kubernetes cluster and a fake DataRobot API started together, seeded with
//! sample data that looks like a real install, and a kubeconfig that points at them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::datarobot::{FakeDataRobot, FakeDataRobotOptions};
use crate::faults::{Fault, FaultRule};
use crate::kube::{AppWorkload, FakeKube, FakeKubeOptions};
use crate::sample::{Sample, SampleSpec};
use crate::world::{App, Deployments, World};

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
    /// Container images and the local binary each stands for: a Job's pod whose container uses
    /// the image runs the binary (sandbox only: a real kubelet pulls the image).
    pub image_binaries: Vec<(String, PathBuf)>,
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
    /// The S3 server of `serve --s3`.
    #[serde(flatten)]
    pub s3: Option<S3Ready>,
}

/// Where the S3 server of `serve --s3` is and its keys (for `AWS_ENDPOINT_URL`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; the location is `s3://BUCKET/PREFIX`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Ready {
    pub s3_endpoint: String,
    pub s3_bucket: String,
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
}

impl S3Ready {
    pub fn of(server: &crate::s3::S3Server) -> S3Ready {
        S3Ready {
            s3_endpoint: server.endpoint.clone(),
            s3_bucket: server.bucket.clone(),
            aws_access_key_id: server.access_key_id.clone(),
            aws_secret_access_key: server.secret_access_key.clone(),
        }
    }
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
        let home = options
            .kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let world = World::builder()
            .home(home)
            .cluster(options.sample.clone())
            .kube_options(FakeKubeOptions {
                lrs_version: options.lrs_version.clone(),
                max_page_size: options.max_page_size,
                lrs_operator_delay: options.lrs_operator_delay,
                ..FakeKubeOptions::default()
            })
            .pods_root(&options.pods_root)
            .namespaces(&["kube-system"])
            .app(App::Workloads)
            .kubeconfig(&options.kubeconfig)
            .context(CONTEXT, None)
            .datarobot(Deployments::Sample, FakeDataRobotOptions::default())
            .start()
            .await?;
        let (Some(cluster), Some(api)) = world.into_parts() else {
            unreachable!("the world was built with both servers");
        };
        for (image, binary) in &options.image_binaries {
            cluster.kube.map_image(image, binary);
        }
        if let Some(latency) = options.dr_latency {
            api.datarobot
                .faults()
                .add(FaultRule::new("", Fault::Latency(latency), None));
        }
        let ready = Ready {
            kubeconfig: options.kubeconfig.clone(),
            context: CONTEXT.to_string(),
            datarobot_url: api.datarobot.url(),
            datarobot_token: api.datarobot.admin_token().to_string(),
            app_namespace: options.sample.app_namespace.clone(),
            datarobot_ca_file: api.ca_file,
            s3: None,
        };
        Ok(Sandbox {
            kube: cluster.kube,
            datarobot: api.datarobot,
            sample: cluster.sample,
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
