//! The DataRobot app pod: finding a ready pod that the app Deployment controls, checking before
//! anything runs that the user may exec into it, learning its architecture, and running commands in it,
//! uploads included, without relying on stdin end-of-file (old API servers drop the
//! connection on it).

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::ResourceExt;
use kube::api::{Api, AttachParams, AttachedProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::objects::send_to;
use super::transport::send_json;
use super::workloads::{self, WorkloadKind};
use super::{Cluster, ClusterError, RequestScope};
use crate::object::Head;

/// `--app`: what to exec into, in kubectl's `TYPE/NAME` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppTarget {
    /// A ready pod of this deployment (`deploy/NAME`).
    Deployment(String),
    /// This pod (`pod/NAME`).
    Pod(String),
}

impl FromStr for AppTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, name) = text.split_once('/').unwrap_or(("pod", text));
        if name.is_empty() || name.contains('/') {
            return Err(format!("`{text}` is not TYPE/NAME (like deploy/mmapp-app)"));
        }
        match kind {
            "deploy" | "deployment" | "deployments" | "deployment.apps" => {
                Ok(AppTarget::Deployment(name.to_string()))
            }
            "po" | "pod" | "pods" => Ok(AppTarget::Pod(name.to_string())),
            other => Err(format!(
                "`{other}` is not a type the plugin can exec into: use deploy/NAME or pod/NAME"
            )),
        }
    }
}

impl fmt::Display for AppTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppTarget::Deployment(name) => write!(f, "deploy/{name}"),
            AppTarget::Pod(name) => write!(f, "pod/{name}"),
        }
    }
}

/// The pod and container commands run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPod {
    pub namespace: String,
    pub name: String,
    pub container: String,
    pub node: Option<String>,
}

/// Why the app pod cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("{target} was not found in the namespace `{namespace}`")]
    TargetNotFound { target: String, namespace: String },

    #[error("{target} in `{namespace}` has no running and ready pod ({pods})")]
    NoReadyPod {
        target: String,
        namespace: String,
        pods: String,
    },

    #[error("the pod {pod} has no container `{container}` (its containers: {containers})")]
    NoSuchContainer {
        pod: String,
        container: String,
        containers: String,
    },

    #[error("missing permissions in the namespace `{namespace}`: {missing}")]
    MissingPermissions {
        namespace: String,
        missing: String,
        can_i: Vec<String>,
    },

    #[error(
        "the container {container} of {pod} has no `sh`, which the plugin needs to run its helper"
    )]
    NoShell { pod: String, container: String },

    #[error("cannot run a command in the pod {pod}")]
    Exec {
        pod: String,
        #[source]
        source: kube::Error,
    },

    #[error("the command in the pod {pod} failed: {message}")]
    CommandFailed { pod: String, message: String },

    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl PodError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PodError::TargetNotFound { .. } => Some(
                "the app lives in the namespace DataRobot is installed in: set --app-namespace \
                 or DR_CORE_NAMESPACE, or name the target with --app"
                    .into(),
            ),
            PodError::NoReadyPod { .. } => Some(
                "wait until the app is up (`kubectl get pods`), or pick a pod with --app \
                 pod/NAME; use --via local to reach the DataRobot API directly"
                    .into(),
            ),
            PodError::NoSuchContainer { .. } => Some("pick one of them with --container".into()),
            PodError::MissingPermissions { can_i, .. } => Some(format!(
                "ask a cluster admin for them; check with {}",
                can_i
                    .iter()
                    .map(|line| format!("`{line}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            PodError::NoShell { .. } => Some(
                "pick a container that has a shell with --container, or use --via local".into(),
            ),
            PodError::Exec { .. } => {
                Some("check that `kubectl exec` works into this pod with the same context".into())
            }
            PodError::Cluster(inner) => inner.hint(),
            PodError::CommandFailed { .. } => None,
        }
    }
}

/// Where to run, and the pods left out on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPod {
    pub pod: AppPod,
    /// Pods that carry the Deployment's labels but that it does not control (created by
    /// someone else, or by another controller): never chosen, named so that someone looks.
    pub strangers: Vec<String>,
}

/// Finds where to run: the named pod, or a running and ready pod that the named Deployment
/// controls (through its ReplicaSet, uids checked: a pod that only carries its labels is never
/// chosen, unlike `kubectl exec deploy/NAME`), and the container (`--container`, else the pod's
/// `kubectl.kubernetes.io/default-container`, else its first container).
pub async fn find_app_pod(
    cluster: &Cluster,
    namespace: &str,
    target: &AppTarget,
    container: Option<&str>,
) -> Result<FoundPod, PodError> {
    let not_found = || PodError::TargetNotFound {
        target: target.to_string(),
        namespace: namespace.to_string(),
    };
    let mut strangers = Vec::new();
    let pod = match target {
        AppTarget::Pod(name) => {
            let pods = workloads::resource_of::<Pod>();
            let answer = send_to(cluster, &pods, namespace, "get", |request| {
                request.get(name, &Default::default())
            })
            .await;
            let pod: Pod = match answer {
                Err(ClusterError::NotFound { .. }) => return Err(not_found()),
                other => other?.json(cluster)?,
            };
            if !is_running(&pod) {
                return Err(PodError::NoReadyPod {
                    target: target.to_string(),
                    namespace: namespace.to_string(),
                    pods: describe_pod(&pod),
                });
            }
            pod
        }
        AppTarget::Deployment(name) => {
            let deployment = workloads::get(cluster, WorkloadKind::Deployment, namespace, name)
                .await?
                .ok_or_else(not_found)?;
            let pods = workloads::pods_of(cluster, &deployment).await?;
            strangers = pods.stranger_names();
            pick_ready(&pods.controlled)
                .cloned()
                .ok_or_else(|| PodError::NoReadyPod {
                    target: target.to_string(),
                    namespace: namespace.to_string(),
                    pods: if pods.controlled.is_empty() {
                        "no pods".to_string()
                    } else {
                        pods.controlled
                            .iter()
                            .map(describe_pod)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                })?
        }
    };
    let name = pod.name_any();
    let containers: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    let chosen = match container {
        Some(wanted) if containers.contains(&wanted) => wanted.to_string(),
        Some(wanted) => {
            return Err(PodError::NoSuchContainer {
                pod: name,
                container: wanted.to_string(),
                containers: containers.join(", "),
            });
        }
        None => pod
            .annotations()
            .get("kubectl.kubernetes.io/default-container")
            .map(String::as_str)
            .filter(|c| containers.contains(c))
            .or(containers.first().copied())
            .unwrap_or_default()
            .to_string(),
    };
    Ok(FoundPod {
        pod: AppPod {
            namespace: namespace.to_string(),
            name,
            container: chosen,
            node: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
        },
        strangers,
    })
}

fn is_running(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pod.metadata.deletion_timestamp.is_none()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn is_ready(pod: &Pod) -> bool {
    is_running(pod)
        && pod
            .status
            .iter()
            .flat_map(|status| status.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The ready pod to use: the oldest, so repeated runs land on the same pod.
fn pick_ready(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| is_ready(p))
        .min_by_key(|p| (p.creation_timestamp(), p.name_any()))
}

fn describe_pod(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let phase = phase(pod).unwrap_or("Unknown");
    let state = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if is_ready(pod) {
        "Ready"
    } else {
        "not ready"
    };
    format!("{name} {phase}, {state}")
}

/// The permissions the pod route needs, asked of the API server before anything runs
/// (SelfSubjectAccessReview), so a missing one is named up front rather than mid-way.
pub async fn check_exec_permissions(
    cluster: &Cluster,
    namespace: &str,
    target: &AppTarget,
) -> Result<(), PodError> {
    let mut wanted: Vec<(&str, &str, &str, &str)> = Vec::new();
    match target {
        AppTarget::Deployment(_) => {
            wanted.push(("get", "apps", "deployments", ""));
            wanted.push(("list", "apps", "replicasets", ""));
            wanted.push(("list", "", "pods", ""));
        }
        AppTarget::Pod(_) => wanted.push(("get", "", "pods", "")),
    }
    wanted.push(("create", "", "pods", "exec"));
    let mut missing = Vec::new();
    let mut can_i = Vec::new();
    for (verb, group, resource, subresource) in wanted {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(namespace.to_string()),
                    verb: Some(verb.to_string()),
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource: Some(subresource.to_string()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let mut request = http::Request::new(serde_json::to_vec(&review).expect("JSON"));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
            .parse()
            .expect("valid URI");
        request.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let scope = RequestScope {
            verb: "create",
            resource: "selfsubjectaccessreviews.authorization.k8s.io",
            namespace: None,
        };
        let answer: SelfSubjectAccessReview = send_json(cluster, request, &scope).await?;
        if !answer.status.is_some_and(|status| status.allowed) {
            let name = match (group, subresource) {
                ("", "") => resource.to_string(),
                ("", sub) => format!("{resource}/{sub}"),
                (group, _) => format!("{resource}.{group}"),
            };
            missing.push(format!("{verb} {name}"));
            can_i.push(format!("kubectl auth can-i {verb} {name} -n {namespace}"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PodError::MissingPermissions {
            namespace: namespace.to_string(),
            missing: missing.join(", "),
            can_i,
        })
    }
}

/// The pod's architecture in Kubernetes' terms (`amd64`, `arm64`): from its node's
/// `kubernetes.io/arch` label, or, when nodes may not be read, from `uname -m` in the pod.
pub async fn architecture(cluster: &Cluster, pod: &AppPod) -> Result<String, PodError> {
    if let Some(node) = &pod.node {
        let scope = RequestScope {
            verb: "get",
            resource: "nodes",
            namespace: None,
        };
        let request = kube::core::Request::new("/api/v1/nodes")
            .get(node, &Default::default())
            .map_err(|err| cluster.build_error(err))?;
        // Only the node's head: its labels say the architecture.
        match send_json::<Head>(cluster, request, &scope).await {
            Ok(node) => {
                if let Some(arch) = node.labels().get("kubernetes.io/arch") {
                    return Ok(arch.clone());
                }
            }
            // Namespace-scoped operators often may not read nodes: ask the pod instead.
            Err(ClusterError::Forbidden { .. } | ClusterError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let output = run(cluster, pod, &["uname", "-m"], None).await?;
    let machine = output.success(pod)?.trim().to_string();
    Ok(match machine.as_str() {
        "x86_64" => "amd64".to_string(),
        "aarch64" | "arm64" => "arm64".to_string(),
        other => other.to_string(),
    })
}

/// What a finished command in the pod printed, and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    /// `None` when the command succeeded.
    pub failure: Option<Status>,
}

impl Finished {
    /// The stdout of a command that succeeded; else an error with its message.
    pub fn success(self, pod: &AppPod) -> Result<String, PodError> {
        match self.failure {
            None => Ok(self.stdout),
            Some(status) => Err(PodError::CommandFailed {
                pod: pod.name.clone(),
                message: if self.stderr.trim().is_empty() {
                    status.message.unwrap_or_default()
                } else {
                    self.stderr.trim().to_string()
                },
            }),
        }
    }
}

/// Starts `command` in the pod with stdin, stdout and stderr attached.
pub async fn start(
    cluster: &Cluster,
    pod: &AppPod,
    command: &[&str],
) -> Result<AttachedProcess, PodError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &pod.namespace);
    let params = AttachParams::default()
        .container(pod.container.clone())
        .stdin(true)
        .stdout(true)
        .stderr(true);
    pods.exec(&pod.name, command.iter().copied(), &params)
        .await
        .map_err(|source| PodError::Exec {
            pod: pod.name.clone(),
            source,
        })
}

/// Runs a command to its end, writing `stdin` first without closing it (the command must know
/// how much to read), and collects its output.
pub async fn run(
    cluster: &Cluster,
    pod: &AppPod,
    command: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Finished, PodError> {
    let mut process = start(cluster, pod, command).await?;
    let exec_error = |source: std::io::Error| PodError::Exec {
        pod: pod.name.clone(),
        source: kube::Error::ReadEvents(source),
    };
    let mut writer = process.stdin().expect("stdin is attached");
    let mut stdout = process.stdout().expect("stdout is attached");
    let mut stderr = process.stderr().expect("stderr is attached");
    let status = process.take_status().expect("status is taken once");
    // Output is read while stdin is written: the streams' buffers are small.
    let feed = async {
        if let Some(bytes) = stdin {
            writer.write_all(bytes).await?;
            writer.flush().await?;
        }
        Ok::<_, std::io::Error>(writer)
    };
    let read_out = async {
        let mut text = Vec::new();
        stdout.read_to_end(&mut text).await.map(|_| text)
    };
    let read_err = async {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).await.map(|_| text)
    };
    let (fed, out, err, status) = tokio::join!(feed, read_out, read_err, status);
    // Kept open until the end: closing stdin is not needed and old servers mishandle it.
    let _writer = fed.map_err(exec_error)?;
    let stdout = String::from_utf8_lossy(&out.map_err(exec_error)?).into_owned();
    let stderr = String::from_utf8_lossy(&err.map_err(exec_error)?).into_owned();
    process
        .join()
        .await
        .map_err(|err| PodError::CommandFailed {
            pod: pod.name.clone(),
            message: format!("the exec stream broke: {err}"),
        })?;
    let failure = match status {
        Some(status) if status.status.as_deref() == Some("Success") => None,
        Some(status) => Some(status),
        None => Some(Status {
            status: Some("Failure".into()),
            message: Some("the connection closed before the command's exit status arrived".into()),
            reason: Some("ConnectionClosed".into()),
            ..Status::default()
        }),
    };
    if let Some(status) = &failure {
        let message = status.message.as_deref().unwrap_or_default();
        if message.contains("executable file not found") && command.first() == Some(&"sh") {
            return Err(PodError::NoShell {
                pod: pod.name.clone(),
                container: pod.container.clone(),
            });
        }
    }
    Ok(Finished {
        stdout,
        stderr,
        failure,
    })
}

/// What [`upload_and_run`] uploads and runs.
#[derive(Debug, Clone, Copy)]
pub struct Executable<'a> {
    /// The file name, in the private directory.
    pub name: &'a str,
    pub size: usize,
    /// Lowercase hex.
    pub sha256: &'a str,
    /// Its arguments (no secrets: anyone in the pod can read a process's arguments).
    pub args: &'a [&'a str],
}

/// Exit status of [`upload_and_run`] when it refused or failed before running the executable
/// (its reason is on stderr, after [`SETUP_PREFIX`]).
pub const SETUP_FAILED: i32 = 125;
/// The start of the lines [`upload_and_run`] itself writes on stderr.
pub const SETUP_PREFIX: &str = "mlbackup: ";

/// The one shell command that receives an executable on stdin, checks it and runs it:
///
/// 1. creates `${TMPDIR:-/tmp}/<dir>` with `mkdir` (exclusive: anything already there, a
///    symbolic link included, makes it fail) under `umask 077`, enters it and checks that it is
///    a directory owned by the exec user with mode `drwx------` (no ACL), so no other user of
///    the pod can write in it;
/// 2. writes exactly `size` bytes of stdin to the file (`head -c`: no end-of-file needed, which
///    old API servers mishandle) without overwriting anything (`set -C`);
/// 3. checks the size, and the sha256 when the pod has `sha256sum` (without it the file is still
///    this upload, in a directory nobody else can write);
/// 4. runs it from that directory, with the rest of stdin and the exec's stdout and stderr;
/// 5. removes the file and the directory (unless `keep`) and exits with the executable's status.
///
/// Check and run happen in the same shell, on a file in a directory only the exec user can
/// write: nothing a previous run or another user left in the pod is ever run.
pub fn upload_and_run(dir: &str, executable: &Executable<'_>, keep: bool) -> String {
    let safe = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    assert!(
        safe(dir)
            && safe(executable.name)
            && safe(executable.sha256)
            && executable.args.iter().all(|a| safe(a)),
        "names and arguments in the upload command are plain words"
    );
    let Executable {
        name,
        size,
        sha256,
        args,
    } = executable;
    let args = args.join(" ");
    // The file is removed relative to the directory entered (its inode, whatever its name
    // now), the directory by name only with rmdir (which removes nothing but an empty one).
    let cleanup = if keep {
        format!(r#"echo "mlbackup: kept $d/{name}" >&2"#)
    } else {
        format!(r#"rm -f ./{name}; cd / && rmdir -- "$d" 2>/dev/null"#)
    };
    format!(
        r#"umask 077
d="${{TMPDIR:-/tmp}}/{dir}"
here=
fail() {{
  echo "mlbackup: $*" >&2
  if [ -n "$here" ]; then rm -f ./{name}; cd / && rmdir -- "$d" 2>/dev/null; fi
  exit {SETUP_FAILED}
}}
mkdir -- "$d" || fail "cannot create the directory $d"
cd -- "$d" || {{ rmdir -- "$d" 2>/dev/null; fail "cannot enter $d"; }}
here=1
set -- $(ls -ldn .)
[ "$3" = "$(id -u)" ] || fail "$d belongs to uid $3, not to uid $(id -u)"
case "$1" in drwx------|drwx------.) ;; *) fail "$d has mode $1, not drwx------" ;; esac
set -C
head -c {size} > {name} || fail "cannot write $d/{name}"
s=$(wc -c < {name})
[ "$s" -eq {size} ] || fail "the upload arrived damaged: $s of {size} bytes"
if command -v sha256sum >/dev/null 2>&1; then
  h=$(sha256sum {name}); h=${{h%% *}}
  [ "$h" = {sha256} ] || fail "the upload arrived damaged: sha256 $h, expected {sha256}"
fi
chmod 700 {name} || fail "cannot make $d/{name} executable"
echo "mlbackup: running $d/{name}" >&2
./{name} {args}
rc=$?
{cleanup}
exit $rc
"#
    )
}

/// Removes the private directory of an [`upload_and_run`] whose command did not get to its
/// end (the connection broke or was given up): a fallback, failures only logged. Its random
/// name was this run's, and a sticky `TMPDIR` lets no one else rename it.
pub async fn remove_private_dir(cluster: &Cluster, pod: &AppPod, dir: &str, file: &str) {
    let script = format!(
        r#"d="${{TMPDIR:-/tmp}}/{dir}"; if [ -d "$d" ] && [ ! -L "$d" ]; then rm -f -- "$d/{file}"; rmdir -- "$d"; fi"#
    );
    match run(cluster, pod, &["sh", "-c", &script], None).await {
        Ok(finished) if finished.failure.is_none() => {}
        Ok(finished) => log::warn!(
            "could not remove {dir} from {}: {}",
            pod.name,
            finished.stderr.trim()
        ),
        Err(err) => log::warn!("could not remove {dir} from {}: {err}", pod.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_read_like_kubectl() {
        assert_eq!(
            "deploy/mmapp-app".parse(),
            Ok(AppTarget::Deployment("mmapp-app".into()))
        );
        assert_eq!(
            "deployment.apps/x".parse(),
            Ok(AppTarget::Deployment("x".into()))
        );
        assert_eq!("pod/p-1".parse(), Ok(AppTarget::Pod("p-1".into())));
        assert_eq!("p-1".parse(), Ok(AppTarget::Pod("p-1".into())));
        assert!("svc/x".parse::<AppTarget>().is_err());
        assert!("deploy/".parse::<AppTarget>().is_err());
        assert_eq!(AppTarget::Deployment("a".into()).to_string(), "deploy/a");
    }

    #[test]
    fn the_oldest_ready_pod_is_chosen() {
        let pod = |name: &str, created: &str, ready: bool| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
            }))
            .unwrap()
        };
        let pods = vec![
            pod("b", "2026-01-02T00:00:00Z", true),
            pod("a", "2026-01-01T00:00:00Z", false),
            pod("c", "2026-01-01T12:00:00Z", true),
        ];
        assert_eq!(pick_ready(&pods).unwrap().name_any(), "c");
        assert!(pick_ready(&pods[1..2]).is_none());
    }
}

/// The pod functions against the in-process fake cluster: real exec, real RBAC answers.
#[cfg(test)]
mod against_the_fake {
    use super::*;
    use mlbackup_testkit::kube::access::DenyRule;
    use mlbackup_testkit::kube::{FakeKube, FakeKubeOptions};
    use serde_json::{Value, json};

    struct Fixture {
        kube: FakeKube,
        cluster: Cluster,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let kube = FakeKube::start(FakeKubeOptions {
            pods_root: dir.path().join("pods"),
            ..FakeKubeOptions::default()
        })
        .await
        .unwrap();
        kube.create_namespace("dr-app");
        kube.add_app_deployment("dr-app", "mmapp-app", 2).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, "fake", Some("dr-app"))
            .unwrap();
        let cluster = crate::cluster::testing::connect(&kubeconfig).await;
        Fixture {
            kube,
            cluster,
            _dir: dir,
        }
    }

    fn deploy() -> AppTarget {
        AppTarget::Deployment("mmapp-app".into())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn finds_a_ready_pod_of_the_deployment_and_its_container() {
        let f = fixture().await;
        let found = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap();
        assert!(found.strangers.is_empty(), "{found:?}");
        let pod = found.pod;
        assert!(pod.name.starts_with("mmapp-app-"), "{pod:?}");
        assert_eq!(pod.namespace, "dr-app");
        assert!(!pod.container.is_empty());
        let again = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap();
        assert_eq!(again.pod.name, pod.name, "the same pod every time");

        let missing = find_app_pod(&f.cluster, "elsewhere", &deploy(), None).await;
        assert!(
            matches!(missing, Err(PodError::TargetNotFound { .. })),
            "{missing:?}"
        );
        let container = find_app_pod(&f.cluster, "dr-app", &deploy(), Some("nope")).await;
        assert!(
            matches!(container, Err(PodError::NoSuchContainer { .. })),
            "{container:?}"
        );
        let by_name = AppTarget::Pod(pod.name.clone());
        assert_eq!(
            find_app_pod(&f.cluster, "dr-app", &by_name, None)
                .await
                .unwrap()
                .pod,
            pod
        );
    }

    /// A Running, Ready pod with the labels of `mmapp-app`, older than its own pods, whose
    /// controller is `owner` (none: created by hand).
    fn lookalike(f: &Fixture, name: &str, owner: Option<Value>) {
        let own = f
            .kube
            .list("pods", Some("dr-app"))
            .into_iter()
            .find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("mmapp-app-")
            })
            .unwrap();
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "dr-app",
                "labels": own["metadata"]["labels"],
                "creationTimestamp": "2020-01-01T00:00:00Z",
            },
            "spec": own["spec"],
            "status": own["status"],
        });
        if let Some(owner) = owner {
            pod["metadata"]["ownerReferences"] = json!([owner]);
        }
        f.kube.insert(pod).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn only_a_pod_the_deployment_controls_is_chosen_and_lookalikes_are_named() {
        let f = fixture().await;
        let replica_set = f.kube.list("replicasets", Some("dr-app"))[0].clone();
        // By hand; under another ReplicaSet's name with a uid that is not its; under the
        // ReplicaSet but not as its controller; under the Deployment itself (real pods never
        // are: its ReplicaSets are between).
        lookalike(&f, "by-hand", None);
        lookalike(
            &f,
            "wrong-uid",
            Some(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": replica_set["metadata"]["name"], "uid": "00000000-0000-0000-0000-000000000000",
                "controller": true})),
        );
        lookalike(
            &f,
            "not-controller",
            Some(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": replica_set["metadata"]["name"], "uid": replica_set["metadata"]["uid"],
                "controller": false})),
        );
        let deployment = f
            .kube
            .get("deployments", Some("dr-app"), "mmapp-app")
            .unwrap();
        lookalike(
            &f,
            "under-the-deployment",
            Some(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "mmapp-app",
                "uid": deployment["metadata"]["uid"], "controller": true}),
            ),
        );
        let found = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap();
        assert!(found.pod.name.starts_with("mmapp-app-"), "{found:?}");
        let mut strangers = found.strangers.clone();
        strangers.sort();
        assert_eq!(
            strangers,
            [
                "by-hand",
                "not-controller",
                "under-the-deployment",
                "wrong-uid"
            ]
        );
        // Named explicitly, a pod is used whoever made it.
        let by_name = find_app_pod(
            &f.cluster,
            "dr-app",
            &AppTarget::Pod("by-hand".into()),
            None,
        )
        .await
        .unwrap();
        assert_eq!(by_name.pod.name, "by-hand");

        // When only lookalikes are ready, there is no pod to use.
        for pod in f.kube.list("pods", Some("dr-app")) {
            let name = pod["metadata"]["name"].as_str().unwrap().to_string();
            if name.starts_with("mmapp-app-") {
                f.kube.remove("pods", Some("dr-app"), &name);
            }
        }
        let err = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("deploy/mmapp-app in `dr-app` has no running and ready pod (no pods)"),
            "{err}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_ready_pod_is_a_clear_error() {
        let f = fixture().await;
        for pod in f.kube.list("pods", Some("dr-app")) {
            let name = pod["metadata"]["name"].as_str().unwrap().to_string();
            let mut pod = pod.clone();
            pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
            f.kube.remove("pods", Some("dr-app"), &name);
            f.kube.insert(pod).unwrap();
        }
        let err = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, PodError::NoReadyPod { .. }), "{err:?}");
        assert!(err.to_string().contains("not ready"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn missing_exec_permission_is_named_before_anything_runs() {
        let f = fixture().await;
        check_exec_permissions(&f.cluster, "dr-app", &deploy())
            .await
            .unwrap();
        f.kube
            .access()
            .deny(DenyRule::new("create", "", "pods").subresource("exec"));
        let err = check_exec_permissions(&f.cluster, "dr-app", &deploy())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing permissions in the namespace `dr-app`: create pods/exec"
        );
        assert!(
            err.hint()
                .unwrap()
                .contains("`kubectl auth can-i create pods/exec -n dr-app`")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn commands_run_with_exit_status_and_the_architecture_is_known() {
        let f = fixture().await;
        let pod = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap()
            .pod;
        let ok = run(
            &f.cluster,
            &pod,
            &["sh", "-c", "echo out; echo err >&2"],
            None,
        )
        .await
        .unwrap();
        assert_eq!((ok.stdout.as_str(), ok.stderr.as_str()), ("out\n", "err\n"));
        assert!(ok.failure.is_none());
        let failed = run(
            &f.cluster,
            &pod,
            &["sh", "-c", "echo why >&2; exit 4"],
            None,
        )
        .await
        .unwrap();
        assert!(failed.failure.is_some());
        let err = failed.success(&pod).unwrap_err();
        assert!(err.to_string().ends_with("failed: why"), "{err}");
        let arch = architecture(&f.cluster, &pod).await.unwrap();
        assert_eq!(arch, "amd64");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn commands_see_the_container_environment_and_can_be_watched() {
        let f = fixture().await;
        let mut pod = f.kube.list("pods", Some("dr-app"))[0].clone();
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        pod["spec"]["containers"][0]["env"] =
            json!([{"name": "TMPDIR", "value": "/elsewhere"}, {"name": "GREETING", "value": "hi"}]);
        f.kube.remove("pods", Some("dr-app"), &name);
        f.kube.insert(pod).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let seen = seen.clone();
            f.kube.before_exec(move |target, command| {
                seen.lock()
                    .unwrap()
                    .push((target.pod.clone(), command.to_vec()));
            });
        }
        let pod = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap()
            .pod;
        let out = run(
            &f.cluster,
            &pod,
            &["sh", "-c", "echo $TMPDIR $GREETING"],
            None,
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, "/elsewhere hi\n");
        assert_eq!(
            *seen.lock().unwrap(),
            [(
                name,
                vec![
                    "sh".to_string(),
                    "-c".into(),
                    "echo $TMPDIR $GREETING".into()
                ]
            )]
        );
    }

    /// The pod's TMPDIR in the fake (the pod's working directory's `tmp`).
    fn pod_tmp(f: &Fixture, pod: &AppPod) -> std::path::PathBuf {
        f._dir
            .path()
            .join("pods")
            .join(&pod.namespace)
            .join(&pod.name)
            .join("tmp")
    }

    fn script(bytes: &[u8]) -> (Vec<u8>, String) {
        (bytes.to_vec(), crate::folder::sha256_hex(bytes))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_upload_is_checked_and_run_in_a_private_directory_then_removed() {
        let f = fixture().await;
        let pod = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap()
            .pod;
        // A program that shows where and how it runs, and the rest of stdin's first line.
        let (program, sha256) = script(
            b"#!/bin/sh\nread -r line\necho \"$line $1\"\nls -ldn . | cut -c1-10\nls\nexit 7\n",
        );
        let executable = Executable {
            name: "prog",
            size: program.len(),
            sha256: &sha256,
            args: &["arg"],
        };
        let command = upload_and_run("mlbackup-test-1", &executable, false);
        let mut stdin = program.clone();
        stdin.extend_from_slice(b"hello\n");
        let finished = run(&f.cluster, &pod, &["sh", "-c", &command], Some(&stdin))
            .await
            .unwrap();
        assert_eq!(
            finished.stdout, "hello arg\ndrwx------\nprog\n",
            "{finished:?}"
        );
        assert!(
            finished.stderr.contains("mlbackup: running "),
            "{finished:?}"
        );
        assert!(
            finished.failure.is_some(),
            "its exit status 7 is the command's"
        );
        let tmp = pod_tmp(&f, &pod);
        assert!(!tmp.join("mlbackup-test-1").exists(), "removed afterwards");

        // Kept on request, under the name given.
        let kept = upload_and_run("mlbackup-test-2", &executable, true);
        run(&f.cluster, &pod, &["sh", "-c", &kept], Some(&stdin))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(tmp.join("mlbackup-test-2").join("prog")).unwrap(),
            program
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_upload_that_does_not_check_out_or_a_name_taken_runs_nothing() {
        let f = fixture().await;
        let pod = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap()
            .pod;
        let tmp = pod_tmp(&f, &pod);
        let marker = tmp.join("ran");
        let (program, sha256) =
            script(format!("#!/bin/sh\ntouch {}\n", marker.display()).as_bytes());
        let run_with = |dir: &'static str, sha256: String| {
            let program = program.clone();
            let (cluster, pod) = (&f.cluster, &pod);
            async move {
                let executable = Executable {
                    name: "prog",
                    size: program.len(),
                    sha256: &sha256,
                    args: &[],
                };
                let command = upload_and_run(dir, &executable, false);
                run(cluster, pod, &["sh", "-c", &command], Some(&program))
                    .await
                    .unwrap()
            }
        };
        // Damaged on the way (another hash): refused, nothing run, nothing left.
        let damaged = run_with("mlbackup-test-3", "0".repeat(64)).await;
        assert!(
            damaged
                .stderr
                .contains("mlbackup: the upload arrived damaged: sha256 "),
            "{damaged:?}"
        );
        assert!(!marker.exists());
        assert!(!tmp.join("mlbackup-test-3").exists());

        // Something already at the name (here a link to a directory someone else made): the
        // command refuses it, and leaves it alone.
        let elsewhere = tmp.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, tmp.join("mlbackup-test-4")).unwrap();
        let taken = run_with("mlbackup-test-4", sha256.clone()).await;
        assert!(
            taken
                .stderr
                .contains("mlbackup: cannot create the directory "),
            "{taken:?}"
        );
        assert_eq!(
            taken
                .failure
                .and_then(|s| s.details)
                .and_then(|d| d.causes)
                .map(|c| c[0].message.clone()),
            Some(Some(SETUP_FAILED.to_string()))
        );
        assert!(!marker.exists());
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
        assert!(tmp.join("mlbackup-test-4").is_symlink());

        // The fallback removal takes only what the command made.
        let kept = upload_and_run(
            "mlbackup-test-5",
            &Executable {
                name: "prog",
                size: 0,
                sha256: &crate::folder::sha256_hex(b""),
                args: &[],
            },
            true,
        );
        run(&f.cluster, &pod, &["sh", "-c", &kept], Some(b""))
            .await
            .unwrap();
        assert!(tmp.join("mlbackup-test-5").join("prog").exists());
        remove_private_dir(&f.cluster, &pod, "mlbackup-test-5", "prog").await;
        assert!(!tmp.join("mlbackup-test-5").exists());
        remove_private_dir(&f.cluster, &pod, "mlbackup-test-4", "prog").await;
        assert!(
            tmp.join("mlbackup-test-4").is_symlink(),
            "a link is not followed"
        );
    }
}
