//! The DataRobot app pod: finding a ready pod of the app deployment, checking before anything
//! runs that the user may exec into it, learning its architecture, and running commands in it,
//! uploads included, without relying on stdin end-of-file (old API servers drop the
//! connection on it).

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::transport::send_json;
use super::{Cluster, ClusterError, RequestScope};

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

    #[error("the upload to {path} in the pod {pod} arrived damaged ({detail})")]
    UploadDamaged {
        pod: String,
        path: String,
        detail: String,
    },

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
            PodError::CommandFailed { .. } | PodError::UploadDamaged { .. } => None,
        }
    }
}

fn get_path(path: String) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = path.parse().expect("built paths are valid URIs");
    request
}

/// Finds where to run: the named pod, or a running and ready pod of the named deployment
/// (like `kubectl exec deploy/NAME`), and the container (`--container`, else the pod's
/// `kubectl.kubernetes.io/default-container`, else its first container).
pub async fn find_app_pod(
    cluster: &Cluster,
    namespace: &str,
    target: &AppTarget,
    container: Option<&str>,
) -> Result<AppPod, PodError> {
    let not_found = || PodError::TargetNotFound {
        target: target.to_string(),
        namespace: namespace.to_string(),
    };
    let pod = match target {
        AppTarget::Pod(name) => {
            let scope = RequestScope {
                verb: "get",
                resource: "pods",
                namespace: Some(namespace),
            };
            let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
            let pod: Value = match send_json(cluster, get_path(path), &scope).await {
                Err(ClusterError::NotFound { .. }) => return Err(not_found()),
                other => other?,
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
            let scope = RequestScope {
                verb: "get",
                resource: "deployments.apps",
                namespace: Some(namespace),
            };
            let path = format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}");
            let deployment: Value = match send_json(cluster, get_path(path), &scope).await {
                Err(ClusterError::NotFound { .. }) => return Err(not_found()),
                other => other?,
            };
            let selector = label_selector(&deployment["spec"]["selector"]);
            let request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
                .list(&kube::api::ListParams::default().labels(&selector))
                .map_err(|err| ClusterError::Client {
                    url: cluster.server_url.clone(),
                    source: kube::Error::BuildRequest(err),
                })?;
            let scope = RequestScope {
                verb: "list",
                resource: "pods",
                namespace: Some(namespace),
            };
            let list: Value = send_json(cluster, request, &scope).await?;
            let pods = list["items"].as_array().cloned().unwrap_or_default();
            pick_ready(&pods)
                .cloned()
                .ok_or_else(|| PodError::NoReadyPod {
                    target: target.to_string(),
                    namespace: namespace.to_string(),
                    pods: if pods.is_empty() {
                        "no pods".to_string()
                    } else {
                        pods.iter().map(describe_pod).collect::<Vec<_>>().join(", ")
                    },
                })?
        }
    };
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .map(|list| list.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let chosen = match container {
        Some(wanted) if containers.contains(&wanted) => wanted.to_string(),
        Some(wanted) => {
            return Err(PodError::NoSuchContainer {
                pod: name,
                container: wanted.to_string(),
                containers: containers.join(", "),
            });
        }
        None => pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
            .as_str()
            .filter(|c| containers.contains(c))
            .or(containers.first().copied())
            .unwrap_or_default()
            .to_string(),
    };
    Ok(AppPod {
        namespace: namespace.to_string(),
        name,
        container: chosen,
        node: pod["spec"]["nodeName"].as_str().map(str::to_string),
    })
}

/// A deployment's `spec.selector` as a label selector string.
pub fn label_selector(selector: &Value) -> String {
    let mut terms: Vec<String> = selector["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for expression in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expression["key"].as_str().unwrap_or_default();
        let values = expression["values"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        terms.push(match expression["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    terms.join(",")
}

fn is_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && pod["metadata"]["deletionTimestamp"].is_null()
}

fn is_ready(pod: &Value) -> bool {
    is_running(pod)
        && pod["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}

/// The ready pod to use: the oldest, so repeated runs land on the same pod.
fn pick_ready(pods: &[Value]) -> Option<&Value> {
    pods.iter().filter(|p| is_ready(p)).min_by_key(|p| {
        (
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    })
}

fn describe_pod(pod: &Value) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
    let state = if !pod["metadata"]["deletionTimestamp"].is_null() {
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
            wanted.push(("list", "", "pods", ""));
        }
        AppTarget::Pod(_) => wanted.push(("get", "", "pods", "")),
    }
    wanted.push(("create", "", "pods", "exec"));
    let mut missing = Vec::new();
    let mut can_i = Vec::new();
    for (verb, group, resource, subresource) in wanted {
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "namespace": namespace, "verb": verb, "group": group,
                "resource": resource, "subresource": subresource,
            }},
        });
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
        let answer: Value = send_json(cluster, request, &scope).await?;
        if answer["status"]["allowed"] != true {
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
        match send_json::<Value>(cluster, get_path(format!("/api/v1/nodes/{node}")), &scope).await {
            Ok(node) => {
                if let Some(arch) = node["metadata"]["labels"]["kubernetes.io/arch"].as_str() {
                    return Ok(arch.to_string());
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

/// Where an uploaded file lives in the pod, and whether this run put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub path: String,
    pub reused: bool,
}

/// Uploads `bytes` as an executable (0700) named `<stem>-<first 16 hex of its sha256>` in the
/// pod's `$TMPDIR` (or `/tmp`), unless a previous run left that exact file. The size is known,
/// so `head -c` reads exactly that many bytes and no end-of-file is needed; the file gets its
/// name only once complete, and the size and (where the pod has `sha256sum`) the hash are
/// checked after.
pub async fn upload_executable(
    cluster: &Cluster,
    pod: &AppPod,
    stem: &str,
    bytes: &[u8],
) -> Result<Uploaded, PodError> {
    let sha256 = crate::folder::sha256_hex(bytes);
    let name = format!("{stem}-{}", &sha256[..16]);
    let size = bytes.len();
    // Prints `<path> <size> <sha256 or ->` of the file if it is there.
    let probe = format!(
        r#"f="${{TMPDIR:-/tmp}}/{name}"; if [ -x "$f" ]; then s=$(wc -c < "$f"); h=-; if command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum "$f" | cut -d' ' -f1); fi; echo "$f $s $h"; else echo "$f absent"; fi"#
    );
    let check = |stdout: &str| -> Result<(String, bool), PodError> {
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        match fields.as_slice() {
            [path, "absent"] => Ok((path.to_string(), false)),
            [path, found_size, found_hash] => {
                let size_ok = found_size.parse::<usize>().ok() == Some(size);
                let hash_ok = *found_hash == "-" || *found_hash == sha256;
                if size_ok && hash_ok {
                    Ok((path.to_string(), true))
                } else {
                    Err(PodError::UploadDamaged {
                        pod: pod.name.clone(),
                        path: path.to_string(),
                        detail: format!(
                            "{found_size} bytes with sha256 {found_hash}, expected {size} bytes \
                             with sha256 {sha256}"
                        ),
                    })
                }
            }
            _ => Err(PodError::CommandFailed {
                pod: pod.name.clone(),
                message: format!("unexpected answer to the file check: {stdout:?}"),
            }),
        }
    };
    let before = run(cluster, pod, &["sh", "-c", &probe], None)
        .await?
        .success(pod)?;
    let (path, present) = match check(&before) {
        Ok(found) => found,
        // A damaged leftover under the final name: replace it.
        Err(PodError::UploadDamaged { path, .. }) => (path, false),
        Err(err) => return Err(err),
    };
    if present {
        return Ok(Uploaded { path, reused: true });
    }
    let write = format!(
        r#"set -e; umask 077; f="{path}"; t="$f.part.$$"; head -c {size} > "$t"; chmod 700 "$t"; mv -f "$t" "$f""#
    );
    run(cluster, pod, &["sh", "-c", &write], Some(bytes))
        .await?
        .success(pod)?;
    let after = run(cluster, pod, &["sh", "-c", &probe], None)
        .await?
        .success(pod)?;
    match check(&after)? {
        (path, true) => Ok(Uploaded {
            path,
            reused: false,
        }),
        (path, false) => Err(PodError::UploadDamaged {
            pod: pod.name.clone(),
            path,
            detail: "the file is not there after the upload".to_string(),
        }),
    }
}

/// Removes a file from the pod; a failure is only logged (the pod's TMPDIR is ephemeral).
pub async fn remove_file(cluster: &Cluster, pod: &AppPod, path: &str) {
    match run(cluster, pod, &["rm", "-f", path], None).await {
        Ok(finished) if finished.failure.is_none() => {}
        Ok(finished) => log::warn!(
            "could not remove {path} from {}: {:?}",
            pod.name,
            finished.failure
        ),
        Err(err) => log::warn!("could not remove {path} from {}: {err}", pod.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn selectors_cover_labels_and_expressions() {
        let selector = json!({
            "matchLabels": {"app": "mmapp", "tier": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dr"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        });
        assert_eq!(
            label_selector(&selector),
            "app=mmapp,tier=web,env in (prod,dr),!canary"
        );
    }

    #[test]
    fn the_oldest_ready_pod_is_chosen() {
        let pod = |name: &str, created: &str, ready: bool| {
            json!({"metadata": {"name": name, "creationTimestamp": created},
                   "status": {"phase": "Running", "conditions": [
                       {"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
        };
        let pods = vec![
            pod("b", "2026-01-02T00:00:00Z", true),
            pod("a", "2026-01-01T00:00:00Z", false),
            pod("c", "2026-01-01T12:00:00Z", true),
        ];
        assert_eq!(pick_ready(&pods).unwrap()["metadata"]["name"], "c");
        assert!(pick_ready(&pods[1..2]).is_none());
    }
}

/// The pod functions against the in-process fake cluster: real exec, real RBAC answers.
#[cfg(test)]
mod against_the_fake {
    use super::*;
    use mlbackup_testkit::kube::access::DenyRule;
    use mlbackup_testkit::kube::{FakeKube, FakeKubeOptions};

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
        let pod = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap();
        assert!(pod.name.starts_with("mmapp-app-"), "{pod:?}");
        assert_eq!(pod.namespace, "dr-app");
        assert!(!pod.container.is_empty());
        let again = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap();
        assert_eq!(again.name, pod.name, "the same pod every time");

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
                .unwrap(),
            pod
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
            .unwrap();
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
    async fn uploads_arrive_whole_are_reused_and_replace_damaged_leftovers() {
        let f = fixture().await;
        let pod = find_app_pod(&f.cluster, "dr-app", &deploy(), None)
            .await
            .unwrap();
        // 3 MiB of varied bytes, like a binary.
        let bytes: Vec<u8> = (0..3 * 1024 * 1024u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let first = upload_executable(&f.cluster, &pod, "mlbackup-helper", &bytes)
            .await
            .unwrap();
        assert!(!first.reused);
        let hash = crate::folder::sha256_hex(&bytes);
        assert!(
            first
                .path
                .ends_with(&format!("mlbackup-helper-{}", &hash[..16]))
        );
        let on_disk = std::fs::read(&first.path).unwrap();
        assert_eq!(on_disk, bytes, "the fake's pod dir is local: compare bytes");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&first.path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let second = upload_executable(&f.cluster, &pod, "mlbackup-helper", &bytes)
            .await
            .unwrap();
        assert!(second.reused, "a second run reuses the uploaded file");

        std::fs::write(&first.path, b"truncated").unwrap();
        let repaired = upload_executable(&f.cluster, &pod, "mlbackup-helper", &bytes)
            .await
            .unwrap();
        assert!(!repaired.reused);
        assert_eq!(std::fs::read(&first.path).unwrap(), bytes);
        remove_file(&f.cluster, &pod, &first.path).await;
        assert!(!std::path::Path::new(&first.path).exists());
    }
}
