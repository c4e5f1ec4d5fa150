//! The CronJob and Job controllers and a kubelet, simulated: a CronJob starts a Job on its
//! schedule (cron in its `timeZone`, `suspend`, `concurrencyPolicy`, `startingDeadlineSeconds`,
//! history limits), and a Job's pod runs its one container as a local process, so that what
//! `kubectl mlbackup schedule install` creates really runs in the sandbox.
//!
//! What a kubelet would do, and how the sandbox does it without containers:
//! - the image is a local binary, mapped by [`FakeKube::map_image`] (`mlbackup-sandbox
//!   --image-binary IMAGE=PATH`): the binary is the image's entrypoint, run with the container's
//!   `args` (a `command`, if given, replaces the entrypoint's argv[0] only: a FROM-scratch image
//!   has one program);
//! - volumes (`emptyDir`, `configMap`, `secret`) are directories of the pod
//!   (`<pods_root>/<ns>/<pod>/volumes/<name>`); with no mount namespace, a path under a volume's
//!   `mountPath` in the args or the env is rewritten to that directory;
//! - the container's `env` (plain values, `secretKeyRef`, `configMapKeyRef`) and nothing of the
//!   sandbox's own environment; the pod's service account gets a token the fake API server
//!   authorises with that account's RBAC, given as a kubeconfig (`KUBECONFIG`) and as the
//!   in-cluster variables (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`) with the token
//!   directory's files in the pod's directory (`serviceaccount/`);
//! - a container that cannot start yet (a missing Secret, ConfigMap or key of its env, a volume
//!   whose object is missing, an image the sandbox does not map) leaves its pod `Pending`, with
//!   the kubelet's `waiting` reason and message (`CreateContainerConfigError`,
//!   `ContainerCreating`, `ErrImagePull` then `ImagePullBackOff`), and is tried again when a
//!   Secret, ConfigMap or ServiceAccount of its namespace changes (and at each resync): it is not
//!   a failure, and the Job waits;
//! - stdout and stderr are the pod's log (`pods/log`); the exit code, phase and times are the
//!   pod's status, and the Job's status and conditions follow; when `activeDeadlineSeconds`
//!   passes, the Job controller deletes the pod (killing its process, if it has one), counts it
//!   as failed and fails the Job (`DeadlineExceeded`).
//!
//! [`FakeKube::map_image`]: super::FakeKube::map_image

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::api::{Cluster, DeleteOptions, WriteOptions};
use super::resources::ResourceType;
use super::store::EventType;

/// The controllers' field manager, as the real ones name themselves.
const MANAGER: &str = "kube-controller-manager";

/// How often the CronJob controller looks at the schedules (the real one also wakes up on its own
/// to check them).
const CRON_TICK: Duration = Duration::from_millis(500);

/// How often the kubelet tries again a pod whose container could not start, besides when what it
/// reads changes (the real kubelet resyncs its pods too, with a back-off).
const KUBELET_RESYNC: Duration = Duration::from_secs(1);

/// What the kubelet needs to give pods their credentials.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    pub ca_pem: Option<String>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now() -> String {
    timestamp(Utc::now())
}

fn manager() -> WriteOptions {
    WriteOptions {
        manager: MANAGER.to_string(),
        ..WriteOptions::default()
    }
}

/// Where the kubelet keeps a pod's log.
pub fn log_path(pods_root: &Path, namespace: &str, pod: &str) -> PathBuf {
    pods_root.join(namespace).join(pod).join("container.log")
}

/// The defaults and labels the Job registry fills in on create (after the uid is set).
pub fn default_job(object: &mut Value) {
    let uid = object["metadata"]["uid"].clone();
    let name = object["metadata"]["name"].clone();
    if !object["spec"].is_object() {
        object["spec"] = json!({});
    }
    let spec = &mut object["spec"];
    for (field, value) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
        if spec[field].is_null() {
            spec[field] = json!(value);
        }
    }
    if spec["selector"].is_null() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    }
    let labels = &mut spec["template"]["metadata"]["labels"];
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["batch.kubernetes.io/controller-uid"] = uid.clone();
    labels["batch.kubernetes.io/job-name"] = name.clone();
    labels["controller-uid"] = uid;
    labels["job-name"] = name;
    object["status"] = json!({});
}

/// The defaults the CronJob registry fills in on create.
pub fn default_cron_job(object: &mut Value) {
    if !object["spec"].is_object() {
        object["spec"] = json!({});
    }
    let spec = &mut object["spec"];
    for (field, value) in [
        ("concurrencyPolicy", json!("Allow")),
        ("suspend", json!(false)),
        ("successfulJobsHistoryLimit", json!(3)),
        ("failedJobsHistoryLimit", json!(1)),
    ] {
        if spec[field].is_null() {
            spec[field] = value;
        }
    }
    object["status"] = json!({});
}

/// Runs the CronJob controller, the Job controller and the kubelet until the returned tasks are
/// aborted.
pub fn spawn(cluster: Arc<Cluster>, kubelet: KubeletConfig) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(run_jobs(cluster.clone(), kubelet)),
        tokio::spawn(run_cron_jobs(cluster)),
    ]
}

fn resource(cluster: &Cluster, plural: &str) -> ResourceType {
    cluster
        .catalog
        .by_plural(plural)
        .cloned()
        .expect("the batch and core types are always served")
}

fn meta<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

/// Whether a Job has finished (a `Complete` or `Failed` condition that is true).
pub fn finished(job: &Value) -> Option<&'static str> {
    job["status"]["conditions"]
        .as_array()?
        .iter()
        .filter(|c| c["status"] == "True")
        .find_map(|c| match c["type"].as_str() {
            Some("Complete") => Some("Complete"),
            Some("Failed") => Some("Failed"),
            _ => None,
        })
}

// ---- Job controller and kubelet -------------------------------------------------------------

async fn run_jobs(cluster: Arc<Cluster>, kubelet: KubeletConfig) {
    let mut events = cluster.lock().subscribe();
    let started: Arc<Mutex<HashSet<String>>> = Arc::default();
    let start_new = |cluster: &Arc<Cluster>| {
        let jobs: Vec<Value> = cluster
            .lock()
            .objects("jobs")
            .map(|(_, job)| (**job).clone())
            .collect();
        for job in jobs {
            let uid = meta(&job, "uid").to_string();
            if finished(&job).is_some() || !started.lock().unwrap().insert(uid) {
                continue;
            }
            tokio::spawn(run_job(cluster.clone(), kubelet.clone(), job));
        }
    };
    start_new(&cluster);
    loop {
        match events.recv().await {
            Ok(event) if event.plural == "jobs" && event.kind == EventType::Added => {
                start_new(&cluster)
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => start_new(&cluster),
            Err(RecvError::Closed) => return,
        }
    }
}

/// How one pod of a Job ended.
enum PodEnd {
    Succeeded,
    /// Failed, or deleted before it ended: counted against `backoffLimit`.
    Failed,
    /// The Job's `activeDeadlineSeconds` passed first: the Job controller deleted the pod (its
    /// process killed, when it had one).
    DeadlineExceeded,
}

async fn run_job(cluster: Arc<Cluster>, kubelet: KubeletConfig, job: Value) {
    let jobs = resource(&cluster, "jobs");
    let namespace = meta(&job, "namespace").to_string();
    let name = meta(&job, "name").to_string();
    let start = Utc::now();
    let deadline = job["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let backoff_limit = job["spec"]["backoffLimit"].as_u64().unwrap_or(6);
    let mut failed = 0u64;
    let _ = cluster.update_status(
        &jobs,
        Some(&namespace),
        &name,
        |old| {
            let mut new = old.clone();
            new["status"] = json!({"startTime": timestamp(start), "active": 1, "ready": 0,
                "terminating": 0, "uncountedTerminatedPods": {}});
            Ok(new)
        },
        &manager(),
    );
    let past_deadline = Err((
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    ));
    let outcome = loop {
        // The controller makes no new pod once the deadline has passed.
        if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
            break past_deadline;
        }
        match run_pod(&cluster, &kubelet, &job, deadline).await {
            PodEnd::Succeeded => break Ok(()),
            // Every pod that had not ended when the Job failed is counted as failed.
            PodEnd::DeadlineExceeded => {
                failed += 1;
                break past_deadline;
            }
            PodEnd::Failed => {
                failed += 1;
                if failed > backoff_limit {
                    break Err((
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    ));
                }
            }
        }
        // A Job deleted meanwhile is not retried.
        if cluster.get(&jobs, Some(&namespace), &name).is_err() {
            return;
        }
    };
    let end = now();
    let _ = cluster.update_status(
        &jobs,
        Some(&namespace),
        &name,
        |old| {
            let mut new = old.clone();
            let status = &mut new["status"];
            if let Some(map) = status.as_object_mut() {
                map.remove("active");
            }
            status["ready"] = json!(0);
            status["terminating"] = json!(0);
            match outcome {
                Ok(()) => {
                    status["succeeded"] = json!(1);
                    status["completionTime"] = json!(end);
                    status["conditions"] = json!([
                        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                         "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": end, "lastTransitionTime": end},
                        {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                         "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": end, "lastTransitionTime": end},
                    ]);
                }
                Err((reason, message)) => {
                    status["conditions"] = json!([
                        {"type": "FailureTarget", "status": "True", "reason": reason, "message": message,
                         "lastProbeTime": end, "lastTransitionTime": end},
                        {"type": "Failed", "status": "True", "reason": reason, "message": message,
                         "lastProbeTime": end, "lastTransitionTime": end},
                    ]);
                }
            }
            if failed > 0 {
                status["failed"] = json!(failed);
            }
            Ok(new)
        },
        &manager(),
    );
}

/// Why a pod's container cannot start (yet), as the kubelet's `waiting` reasons say it.
#[derive(Clone, Debug, PartialEq)]
struct StartError {
    reason: &'static str,
    /// `None` where the kubelet gives none (`ContainerCreating`: it says why in an event only).
    message: Option<String>,
}

/// The types a kubelet reads for a pod's container: a change to one may let a waiting pod start.
const CONFIG_TYPES: [&str; 3] = ["secrets", "configmaps", "serviceaccounts"];

/// What a waiting pod does next.
enum Next {
    TryAgain,
    /// The pod was deleted (by someone, or with its Job).
    Deleted,
    /// The Job's deadline passed.
    Deadline,
}

/// Until `deadline`, or for ever.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits, as a kubelet does for a pod whose container cannot start, until it is worth another
/// try: a Secret, ConfigMap or ServiceAccount of the pod's namespace changed (the kubelet
/// watches those its pods use), or the kubelet's resync came (which sees an image mapped
/// meanwhile); or until the pod is deleted or the Job's deadline passes.
async fn next_try(
    events: &mut tokio::sync::broadcast::Receiver<super::store::StoreEvent>,
    namespace: &str,
    pod: &str,
    deadline: Option<tokio::time::Instant>,
) -> Next {
    let changed = async {
        loop {
            match events.recv().await {
                Ok(event) if event.object["metadata"]["namespace"] == namespace => {
                    if event.plural == "pods"
                        && event.kind == EventType::Deleted
                        && meta(&event.object, "name") == pod
                    {
                        return Next::Deleted;
                    }
                    if CONFIG_TYPES.contains(&event.plural.as_str()) {
                        return Next::TryAgain;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return Next::TryAgain,
                // The cluster is going away: nothing changes any more but time.
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        next = changed => next,
        () = tokio::time::sleep(KUBELET_RESYNC) => Next::TryAgain,
        () = until(deadline) => Next::Deadline,
    }
}

/// Creates one pod of the Job and runs its container: while what the container needs is
/// missing, the pod stays `Pending` with the kubelet's `waiting` reason and is tried again as
/// that changes; at the Job's deadline the pod is deleted (its process killed). Returns how
/// the pod ended.
async fn run_pod(
    cluster: &Arc<Cluster>,
    kubelet: &KubeletConfig,
    job: &Value,
    deadline: Option<tokio::time::Instant>,
) -> PodEnd {
    let pods = resource(cluster, "pods");
    let namespace = meta(job, "namespace").to_string();
    let job_name = meta(job, "name");
    let template = &job["spec"]["template"];
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("{job_name}-"),
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                "uid": meta(job, "uid"), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": template["spec"],
    });
    pod["spec"]["nodeName"] = json!("sandbox");
    if pod["spec"]["serviceAccountName"].is_null() {
        pod["spec"]["serviceAccountName"] = json!("default");
    }
    // Subscribed before the pod exists, so that no change after the first try is missed.
    let mut events = cluster.lock().subscribe();
    let Ok((_, created)) = cluster.create(&pods, Some(&namespace), pod, &manager()) else {
        return PodEnd::Failed;
    };
    let pod_name = meta(&created, "name").to_string();
    let container = created["spec"]["containers"][0].clone();
    let container_name = container["name"].as_str().unwrap_or_default().to_string();
    let image = container["image"].as_str().unwrap_or_default().to_string();
    let set_status = |status: Value| {
        let _ = cluster.update_status(
            &pods,
            Some(&namespace),
            &pod_name,
            |old| {
                let mut new = old.clone();
                new["status"] = status;
                Ok(new)
            },
            &manager(),
        );
    };
    // What the Job controller does at the deadline: delete the pod (a pod that had not ended
    // is then counted as failed).
    let delete_pod = || {
        let _ = cluster.delete(
            &pods,
            Some(&namespace),
            &pod_name,
            &DeleteOptions::default(),
        );
    };
    let started = now();
    let workdir = cluster.pods_root.join(&namespace).join(&pod_name);
    let mut said: Option<StartError> = None;
    let resolved = loop {
        let mut error = match resolve(cluster, &created, &container, &workdir) {
            Ok(resolved) => break resolved,
            Err(error) => error,
        };
        // After a failed pull the kubelet backs off, and says so with the pull's error.
        if error.reason == "ErrImagePull"
            && said
                .as_ref()
                .is_some_and(|s| matches!(s.reason, "ErrImagePull" | "ImagePullBackOff"))
        {
            error = StartError {
                reason: "ImagePullBackOff",
                message: Some(format!(
                    "Back-off pulling image {image:?}: ErrImagePull: {}",
                    error.message.unwrap_or_default()
                )),
            };
        }
        if said.as_ref() != Some(&error) {
            let mut waiting = json!({"reason": error.reason});
            if let Some(message) = &error.message {
                waiting["message"] = json!(message);
            }
            let mut status = json!({"phase": "Pending", "startTime": started, "hostIP": "127.0.0.1",
                "containerStatuses": [{"name": container_name, "ready": false, "started": false,
                    "restartCount": 0, "image": image, "imageID": "", "state": {"waiting": waiting}}]});
            // Volumes are mounted before the pod's sandbox (and its IP) exists.
            if error.reason != "ContainerCreating" {
                status["podIP"] = json!("127.0.0.1");
            }
            set_status(status);
            said = Some(error);
        }
        match next_try(&mut events, &namespace, &pod_name, deadline).await {
            Next::TryAgain => {}
            Next::Deleted => return PodEnd::Failed,
            Next::Deadline => {
                delete_pod();
                return PodEnd::DeadlineExceeded;
            }
        }
    };
    let mut command = match prepare(cluster, kubelet, &created, resolved, &workdir) {
        Ok(command) => command,
        Err(StartError { reason, message }) => {
            set_status(json!({
                "phase": "Failed", "startTime": started, "reason": reason, "message": message,
                "containerStatuses": [{"name": container_name, "ready": false, "restartCount": 0,
                    "image": image, "state": {"waiting": {"reason": reason, "message": message}}}],
            }));
            return PodEnd::Failed;
        }
    };
    let child = command.spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            let message = format!("failed to start the container's process: {err}");
            set_status(json!({"phase": "Failed", "startTime": started,
                "containerStatuses": [{"name": container_name, "ready": false, "restartCount": 0,
                    "image": image, "state": {"terminated": {"exitCode": 128,
                    "reason": "StartError", "message": message, "startedAt": started, "finishedAt": now()}}}]}));
            return PodEnd::Failed;
        }
    };
    let running_since = now();
    set_status(
        json!({"phase": "Running", "startTime": started, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "containerStatuses": [{"name": container_name, "ready": true, "started": true, "restartCount": 0,
            "image": image, "state": {"running": {"startedAt": running_since}}}]}),
    );
    let waited = tokio::select! {
        waited = child.wait() => Some(waited),
        () = until(deadline) => None,
    };
    let exit_code = match waited {
        Some(Ok(status)) => status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }),
        Some(Err(_)) => 128,
        None => {
            let _ = child.kill().await;
            137
        }
    };
    let succeeded = exit_code == 0 && waited.is_some();
    let terminated_reason = if succeeded { "Completed" } else { "Error" };
    set_status(json!({
        "phase": if succeeded { "Succeeded" } else { "Failed" },
        "startTime": started, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "containerStatuses": [{"name": container_name, "ready": false, "started": false, "restartCount": 0,
            "image": image, "state": {"terminated": {"exitCode": exit_code,
            "reason": terminated_reason, "startedAt": running_since, "finishedAt": now()}}}],
    }));
    if waited.is_none() {
        delete_pod();
        return PodEnd::DeadlineExceeded;
    }
    if succeeded {
        PodEnd::Succeeded
    } else {
        PodEnd::Failed
    }
}

/// A volume of the pod: its mount path in the container, its directory here and its files.
struct Mount {
    mount_path: String,
    dir: PathBuf,
    files: Vec<(String, Vec<u8>)>,
}

/// Rewrites a path under a mount to the volume's directory here.
fn map_path(mounts: &[Mount], text: &str) -> String {
    for mount in mounts {
        let prefix = mount.mount_path.trim_end_matches('/');
        if text == prefix {
            return mount.dir.display().to_string();
        }
        if let Some(rest) = text.strip_prefix(&format!("{prefix}/")) {
            return mount.dir.join(rest).display().to_string();
        }
    }
    text.to_string()
}

/// What the container needs, looked up in the cluster: nothing written yet.
struct Resolved {
    binary: PathBuf,
    account: String,
    /// The service account's token directory first, then the volumes.
    mounts: Vec<Mount>,
    /// The container's env, resolved and its paths mapped.
    env: Vec<(String, String)>,
}

/// Looks up what the container needs in the order a kubelet does, and when something is missing
/// says so as it does: a `secret` or `configMap` volume whose object is missing cannot be
/// mounted (`ContainerCreating`, without a message: the kubelet says `MountVolume.SetUp failed`
/// in a `FailedMount` event only); an image the sandbox does not map cannot be pulled
/// (`ErrImagePull`); a missing Secret, ConfigMap or key of the env is a
/// `CreateContainerConfigError` with the kubelet's message (`secret "keys" not found`,
/// `couldn't find key nope in Secret batch/keys`), an optional one leaves its variable unset.
fn resolve(
    cluster: &Arc<Cluster>,
    pod: &Value,
    container: &Value,
    workdir: &Path,
) -> Result<Resolved, StartError> {
    let namespace = meta(pod, "namespace");
    let config_error = |message: String| StartError {
        reason: "CreateContainerConfigError",
        message: Some(message),
    };
    let config_maps = resource(cluster, "configmaps");
    let secrets = resource(cluster, "secrets");
    // The kubelet's own messages name the type in the singular (its caches' NotFound errors).
    let not_found = |kind: &str, name: &str| format!("{kind} \"{name}\" not found");
    // Volumes.
    let volumes: HashMap<String, Value> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), v.clone())))
        .collect();
    // The service account's token directory (written by `prepare`).
    let mut mounts = vec![Mount {
        mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
        dir: workdir.join("serviceaccount"),
        files: Vec::new(),
    }];
    let cannot_mount = || StartError {
        reason: "ContainerCreating",
        message: None,
    };
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().unwrap_or_default();
        let volume = volumes.get(name).ok_or_else(|| {
            config_error(format!(
                "volume \"{name}\" of the mount is not in the pod's volumes"
            ))
        })?;
        let optional =
            |source: &serde_json::Map<String, Value>| source.get("optional") == Some(&json!(true));
        let files: Vec<(String, Vec<u8>)> = if let Some(source) = volume["configMap"].as_object() {
            let cm_name = source["name"].as_str().unwrap_or_default();
            match cluster.get(&config_maps, Some(namespace), cm_name) {
                Ok(cm) => cm["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().unwrap_or_default().as_bytes().to_vec(),
                        )
                    })
                    .collect(),
                Err(_) if optional(source) => Vec::new(),
                Err(_) => return Err(cannot_mount()),
            }
        } else if let Some(source) = volume["secret"].as_object() {
            let secret_name = source["secretName"].as_str().unwrap_or_default();
            match cluster.get(&secrets, Some(namespace), secret_name) {
                Ok(secret) => secret["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            STANDARD
                                .decode(v.as_str().unwrap_or_default())
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
                Err(_) if optional(source) => Vec::new(),
                Err(_) => return Err(cannot_mount()),
            }
        } else {
            Vec::new() // emptyDir
        };
        mounts.push(Mount {
            mount_path: mount["mountPath"].as_str().unwrap_or_default().to_string(),
            dir: workdir.join("volumes").join(name),
            files,
        });
    }
    // The image.
    let image = container["image"].as_str().unwrap_or_default();
    let binary = cluster
        .images
        .lock()
        .unwrap()
        .get(image)
        .cloned()
        .ok_or_else(|| StartError {
            reason: "ErrImagePull",
            message: Some(format!(
                "the sandbox maps no binary to the image \"{image}\" (mlbackup-sandbox --image-binary IMAGE=PATH)"
            )),
        })?;
    // The service account.
    let account = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default");
    let accounts = resource(cluster, "serviceaccounts");
    if cluster.get(&accounts, Some(namespace), account).is_err() {
        return Err(config_error(format!(
            "serviceaccount \"{account}\" not found in namespace \"{namespace}\""
        )));
    }
    // The environment: the container's, resolved.
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let from = &var["valueFrom"];
        let value = if let Some(reference) = from["secretKeyRef"].as_object() {
            let (object, key, optional) = key_ref(reference);
            let secret = match cluster.get(&secrets, Some(namespace), object) {
                Ok(secret) => secret,
                Err(_) if optional => continue,
                Err(_) => return Err(config_error(not_found("secret", object))),
            };
            match secret["data"][key].as_str() {
                Some(encoded) => {
                    String::from_utf8_lossy(&STANDARD.decode(encoded).unwrap_or_default())
                        .into_owned()
                }
                None if optional => continue,
                None => {
                    return Err(config_error(format!(
                        "couldn't find key {key} in Secret {namespace}/{object}"
                    )));
                }
            }
        } else if let Some(reference) = from["configMapKeyRef"].as_object() {
            let (object, key, optional) = key_ref(reference);
            let config_map = match cluster.get(&config_maps, Some(namespace), object) {
                Ok(config_map) => config_map,
                Err(_) if optional => continue,
                Err(_) => return Err(config_error(not_found("configmap", object))),
            };
            match config_map["data"][key].as_str() {
                Some(value) => value.to_string(),
                None if optional => continue,
                None => {
                    return Err(config_error(format!(
                        "couldn't find key {key} in ConfigMap {namespace}/{object}"
                    )));
                }
            }
        } else {
            var["value"].as_str().unwrap_or_default().to_string()
        };
        env.push((name, map_path(&mounts, &value)));
    }
    Ok(Resolved {
        binary,
        account: account.to_string(),
        mounts,
        env,
    })
}

/// The name, key and `optional` of a `secretKeyRef` or `configMapKeyRef`.
fn key_ref(reference: &serde_json::Map<String, Value>) -> (&str, &str, bool) {
    (
        reference["name"].as_str().unwrap_or_default(),
        reference["key"].as_str().unwrap_or_default(),
        reference.get("optional").and_then(Value::as_bool) == Some(true),
    )
}

/// The container's process, ready to spawn: the pod's directory, the service account's token
/// and kubeconfig, the volumes' files, the log; an error here is the runtime's
/// (`CreateContainerError`).
fn prepare(
    cluster: &Arc<Cluster>,
    kubelet: &KubeletConfig,
    pod: &Value,
    resolved: Resolved,
    workdir: &Path,
) -> Result<tokio::process::Command, StartError> {
    let namespace = meta(pod, "namespace");
    let pod_name = meta(pod, "name");
    let container = &pod["spec"]["containers"][0];
    let io_error = |what: &str, err: std::io::Error| StartError {
        reason: "CreateContainerError",
        message: Some(format!("{what}: {err}")),
    };
    let Resolved {
        binary,
        account,
        mounts,
        env,
    } = resolved;
    std::fs::create_dir_all(workdir).map_err(|e| io_error("cannot make the pod's directory", e))?;
    // The service account's token.
    let token = uuid::Uuid::new_v4().simple().to_string();
    cluster
        .service_account_tokens
        .lock()
        .unwrap()
        .insert(token.clone(), (namespace.to_string(), account.clone()));
    let token_dir = workdir.join("serviceaccount");
    std::fs::create_dir_all(&token_dir).map_err(|e| io_error("cannot write the token", e))?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text)
            .map_err(|e| io_error(&format!("cannot write {}", path.display()), e))
    };
    write(token_dir.join("token"), &token)?;
    write(token_dir.join("namespace"), namespace)?;
    let mut cluster_entry = json!({"server": kubelet.server});
    if let Some(ca) = &kubelet.ca_pem {
        write(token_dir.join("ca.crt"), ca)?;
        cluster_entry["certificate-authority-data"] = json!(STANDARD.encode(ca));
    }
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": cluster_entry}],
        "users": [{"name": account, "user": {"tokenFile": token_dir.join("token")}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": account, "namespace": namespace}}],
        "current-context": "in-cluster",
    });
    let kubeconfig_path = workdir.join("kubeconfig");
    write(
        kubeconfig_path.clone(),
        &serde_json::to_string_pretty(&kubeconfig).unwrap_or_default(),
    )?;
    // The volumes' files.
    for mount in &mounts[1..] {
        std::fs::create_dir_all(&mount.dir).map_err(|e| io_error("cannot make a volume", e))?;
        for (file, bytes) in &mount.files {
            std::fs::write(mount.dir.join(file), bytes)
                .map_err(|e| io_error("cannot fill a volume", e))?;
        }
    }
    let port = kubelet
        .server
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let args: Vec<String> = container["command"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .chain(container["args"].as_array().into_iter().flatten())
        .map(|a| map_path(&mounts, a.as_str().unwrap_or_default()))
        .collect();
    let log = log_path(&cluster.pods_root, namespace, pod_name);
    let stdout = std::fs::File::create(&log).map_err(|e| io_error("cannot open the log", e))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| io_error("cannot open the log", e))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("HOSTNAME", pod_name)
        .env("HOME", workdir)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port)
        .env("KUBECONFIG", &kubeconfig_path)
        .envs(env)
        .current_dir(workdir)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    Ok(command)
}

// ---- CronJob controller ---------------------------------------------------------------------

async fn run_cron_jobs(cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(CRON_TICK);
    loop {
        tick.tick().await;
        let cron_jobs: Vec<Value> = cluster
            .lock()
            .objects("cronjobs")
            .map(|(_, c)| (**c).clone())
            .collect();
        for cron_job in cron_jobs {
            sync_cron_job(&cluster, &cron_job, Utc::now());
        }
    }
}

/// The most recent time at or before `now` and after `since` that `schedule` (in `time_zone`)
/// names, or an error message as the real controller reports an unparseable schedule.
pub fn most_recent_schedule(
    schedule: &str,
    time_zone: Option<&str>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| format!("unparseable schedule {schedule:?}: {e}"))?;
    let tz = match time_zone {
        Some(name) => {
            chrono_tz::Tz::from_str(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?
        }
        None => chrono_tz::UTC,
    };
    let mut latest = None;
    let mut cursor = since.with_timezone(&tz);
    // The real controller gives up after 100 missed start times.
    for _ in 0..100 {
        match cron.find_next_occurrence(&cursor, false) {
            Ok(next) if next.with_timezone(&Utc) <= now => {
                latest = Some(next.with_timezone(&Utc));
                cursor = next;
            }
            _ => break,
        }
    }
    Ok(latest)
}

fn jobs_of<'a>(jobs: &'a [Value], uid: &str) -> Vec<&'a Value> {
    jobs.iter()
        .filter(|job| {
            job["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["uid"] == uid && r["controller"] == true)
                })
        })
        .collect()
}

fn reference(job: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": meta(job, "name"),
        "namespace": meta(job, "namespace"), "uid": meta(job, "uid"),
        "resourceVersion": meta(job, "resourceVersion")})
}

/// One pass of the CronJob controller over one CronJob: status from the Jobs it controls (also
/// those started by hand from it), history limits, then a new Job when one is due.
fn sync_cron_job(cluster: &Cluster, cron_job: &Value, now: DateTime<Utc>) {
    let (cron_jobs, jobs_type) = (resource(cluster, "cronjobs"), resource(cluster, "jobs"));
    let namespace = meta(cron_job, "namespace").to_string();
    let name = meta(cron_job, "name").to_string();
    let uid = meta(cron_job, "uid").to_string();
    let spec = &cron_job["spec"];
    let all_jobs: Vec<Value> = cluster
        .lock()
        .objects("jobs")
        .filter(|(key, _)| key.0 == namespace)
        .map(|(_, j)| (**j).clone())
        .collect();
    let owned = jobs_of(&all_jobs, &uid);
    let active: Vec<&Value> = owned
        .iter()
        .copied()
        .filter(|j| finished(j).is_none())
        .collect();
    let last_success = owned
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j["status"]["completionTime"].as_str())
        .max()
        .map(str::to_string);
    // History limits: the oldest finished Jobs beyond them go, with their pods.
    for (kind, limit) in [
        (
            "Complete",
            spec["successfulJobsHistoryLimit"].as_u64().unwrap_or(3),
        ),
        (
            "Failed",
            spec["failedJobsHistoryLimit"].as_u64().unwrap_or(1),
        ),
    ] {
        let mut done: Vec<&Value> = owned
            .iter()
            .copied()
            .filter(|j| finished(j) == Some(kind))
            .collect();
        done.sort_by_key(|j| {
            j["status"]["startTime"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        let surplus = done.len().saturating_sub(limit as usize);
        for job in &done[..surplus] {
            let _ = cluster.delete(
                &jobs_type,
                Some(&namespace),
                meta(job, "name"),
                &DeleteOptions::default(),
            );
        }
    }
    let mut status = cron_job["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let references: Vec<Value> = active.iter().map(|j| reference(j)).collect();
    if references.is_empty() {
        if let Some(map) = status.as_object_mut() {
            map.remove("active");
        }
    } else {
        status["active"] = json!(references);
    }
    if let Some(time) = &last_success {
        status["lastSuccessfulTime"] = json!(time);
    }
    // Is a run due?
    let parse = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let since = status["lastScheduleTime"]
        .as_str()
        .and_then(parse)
        .or_else(|| parse(meta(cron_job, "creationTimestamp")))
        .unwrap_or(now);
    // An unparseable schedule starts nothing (the real controller records a warning event).
    let due = most_recent_schedule(
        spec["schedule"].as_str().unwrap_or_default(),
        spec["timeZone"].as_str(),
        since,
        now,
    )
    .unwrap_or_default();
    let too_late = |at: DateTime<Utc>| {
        spec["startingDeadlineSeconds"]
            .as_i64()
            .is_some_and(|deadline| (now - at).num_seconds() > deadline)
    };
    let forbid = spec["concurrencyPolicy"] == "Forbid" && !active.is_empty();
    if let Some(at) = due
        && spec["suspend"] != true
        && !too_late(at)
        && !forbid
    {
        let template = &spec["jobTemplate"];
        let mut annotations = template["metadata"]["annotations"].clone();
        if !annotations.is_object() {
            annotations = json!({});
        }
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(timestamp(at));
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": format!("{name}-{}", at.timestamp() / 60),
                "namespace": namespace,
                "labels": template["metadata"]["labels"],
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": name,
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": template["spec"],
        });
        if let Ok((_, created)) = cluster.create(&jobs_type, Some(&namespace), job, &manager()) {
            let mut references = status["active"].as_array().cloned().unwrap_or_default();
            references.push(reference(&created));
            status["active"] = json!(references);
        }
        status["lastScheduleTime"] = json!(timestamp(at));
    }
    if status != cron_job["status"] {
        let _ = cluster.update_status(
            &cron_jobs,
            Some(&namespace),
            &name,
            |old| {
                let mut new = old.clone();
                new["status"] = status;
                Ok(new)
            },
            &manager(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_most_recent_schedule_follows_the_time_zone() {
        // 03:00 in Berlin (UTC+1 in November) is 02:00 UTC.
        let due = most_recent_schedule(
            "0 3 * * *",
            Some("Europe/Berlin"),
            at("2026-11-28T12:00:00Z"),
            at("2026-11-29T02:30:00Z"),
        );
        assert_eq!(due, Ok(Some(at("2026-11-29T02:00:00Z"))));
        let not_yet = most_recent_schedule(
            "0 3 * * *",
            None,
            at("2026-11-28T12:00:00Z"),
            at("2026-11-29T02:30:00Z"),
        );
        assert_eq!(not_yet, Ok(None));
        // Several missed: the latest is the one run, as the real controller does.
        let latest = most_recent_schedule(
            "*/10 * * * *",
            None,
            at("2026-11-29T00:00:00Z"),
            at("2026-11-29T00:35:00Z"),
        );
        assert_eq!(latest, Ok(Some(at("2026-11-29T00:30:00Z"))));
        assert!(
            most_recent_schedule("0 3 * *", None, at("2026-11-28T12:00:00Z"), Utc::now()).is_err()
        );
        assert!(
            most_recent_schedule(
                "0 3 * * *",
                Some("Mars/Base"),
                at("2026-11-28T12:00:00Z"),
                Utc::now()
            )
            .is_err()
        );
    }

    use super::super::{FakeKube, FakeKubeOptions, new_cluster};

    /// Waits, by the store's events (no polling), until `check` finds what it looks for.
    async fn wait_for<T>(cluster: &Cluster, what: &str, check: impl Fn() -> Option<T>) -> T {
        let mut events = cluster.lock().subscribe();
        let wait = async {
            loop {
                if let Some(found) = check() {
                    return found;
                }
                let _ = events.recv().await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(found) => found,
            Err(_) => panic!("timed out waiting until {what}"),
        }
    }

    /// Waits for the store to hold Job `name` finished.
    async fn finished_job(cluster: &Cluster, namespace: &str, name: &str) -> Value {
        let jobs = resource(cluster, "jobs");
        wait_for(cluster, &format!("the Job {name} finishes"), || {
            cluster
                .get(&jobs, Some(namespace), name)
                .ok()
                .filter(|job| finished(job).is_some())
        })
        .await
    }

    /// Waits until the one pod of Job `job` is waiting with `reason`; returns it.
    async fn waiting_pod(kube: &FakeKube, job: &str, reason: &str) -> Value {
        wait_for(
            &kube.cluster,
            &format!("a pod of {job} waits with {reason}"),
            || {
                pods_of(kube, job).into_iter().find(|pod| {
                    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == reason
                })
            },
        )
        .await
    }

    fn condition(job: &Value, kind: &str) -> Value {
        job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn pods_of(kube: &FakeKube, job: &str) -> Vec<Value> {
        kube.list("pods", Some("batch"))
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["job-name"] == job)
            .collect()
    }

    async fn kube_with_shell() -> (FakeKube, tempfile::TempDir) {
        let pods = tempfile::tempdir().unwrap();
        let kube = FakeKube::start(FakeKubeOptions {
            tls: false,
            pods_root: pods.path().to_path_buf(),
            lrs_operator_delay: None,
            ..FakeKubeOptions::default()
        })
        .await
        .unwrap();
        kube.map_image("busybox", Path::new("/bin/sh"));
        kube.create_namespace("batch");
        for object in [
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "batch"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "batch"},
                "data": {"greeting": "hello", "file.txt": "from a config map"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "batch"},
                "data": {"key": STANDARD.encode("s3cret")}}),
        ] {
            kube.insert(object).unwrap();
        }
        (kube, pods)
    }

    fn job(name: &str, script: &str, extra: Value) -> Value {
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "batch"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "serviceAccountName": "runner",
            "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}, {"name": "tmp", "emptyDir": {}}],
            "containers": [{"name": "main", "image": "busybox", "command": ["/bin/sh"], "args": ["-c", script],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "tmp", "mountPath": "/tmp"}],
                "env": [
                    {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                    {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "key"}}},
                    {"name": "FILE", "value": "/etc/cfg/file.txt"},
                    {"name": "TMPDIR", "value": "/tmp"},
                ]}]}}}});
        if let (Some(spec), Some(extra)) = (job["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        job
    }

    #[tokio::test]
    async fn a_job_runs_its_container_as_a_process_with_its_env_volumes_and_credentials() {
        let (kube, pods_root) = kube_with_shell().await;
        let script = r#"echo "$GREETING $KEY"; cat "$FILE"; echo; test -d "$TMPDIR" && echo tmp ok; echo "${CARGO:-clean env}"; cat "$KUBECONFIG" | grep -c tokenFile; exit 0"#;
        kube.insert(job("ok", script, json!({}))).unwrap();
        let done = finished_job(&kube.cluster, "batch", "ok").await;
        assert_eq!(finished(&done), Some("Complete"), "{done}");
        assert_eq!(done["status"]["succeeded"], 1);
        assert!(
            done["status"]["startTime"].is_string() && done["status"]["completionTime"].is_string()
        );
        let pods = pods_of(&kube, "ok");
        assert_eq!(pods.len(), 1);
        let pod = &pods[0];
        assert_eq!(pod["status"]["phase"], "Succeeded");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        let log = std::fs::read_to_string(log_path(
            pods_root.path(),
            "batch",
            pod["metadata"]["name"].as_str().unwrap(),
        ))
        .unwrap();
        assert_eq!(
            log,
            "hello s3cret\nfrom a config map\ntmp ok\nclean env\n1\n"
        );
    }

    #[tokio::test]
    async fn a_failing_container_fails_the_job_after_its_backoff_limit() {
        let (kube, _pods) = kube_with_shell().await;
        kube.insert(job(
            "fails",
            "echo trying; exit 3",
            json!({"backoffLimit": 1}),
        ))
        .unwrap();
        let done = finished_job(&kube.cluster, "batch", "fails").await;
        assert_eq!(finished(&done), Some("Failed"), "{done}");
        assert_eq!(done["status"]["failed"], 2, "one try and one retry");
        let failed = done["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Failed")
            .unwrap()
            .clone();
        assert_eq!(failed["reason"], "BackoffLimitExceeded");
        let pods = pods_of(&kube, "fails");
        assert_eq!(pods.len(), 2);
        for pod in pods {
            assert_eq!(pod["status"]["phase"], "Failed");
            assert_eq!(
                pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
                3
            );
        }
    }

    #[tokio::test]
    async fn active_deadline_seconds_deletes_the_pod_and_kills_its_process() {
        let (kube, pods_root) = kube_with_shell().await;
        kube.insert(job(
            "slow",
            r#"echo $$ > "$TMPDIR/pid"; exec sleep 600"#,
            json!({"activeDeadlineSeconds": 1}),
        ))
        .unwrap();
        let done = finished_job(&kube.cluster, "batch", "slow").await;
        let failed = condition(&done, "Failed");
        assert_eq!(failed["reason"], "DeadlineExceeded", "{done}");
        assert_eq!(done["status"]["failed"], 1, "{done}");
        assert!(pods_of(&kube, "slow").is_empty(), "the pod was deleted");
        let pod_dir = std::fs::read_dir(pods_root.path().join("batch"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let pid = std::fs::read_to_string(pod_dir.join("volumes/tmp/pid")).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the process {pid} was killed"
        );
    }

    /// Sets the env variable at `index` of job's container.
    fn set_env(job: &mut Value, index: usize, var: Value) {
        job["spec"]["template"]["spec"]["containers"][0]["env"][index] = var;
    }

    #[tokio::test]
    async fn a_missing_secret_or_key_leaves_the_pod_pending_until_it_appears() {
        let (kube, pods_root) = kube_with_shell().await;
        let mut bad = job("bad-ref", r#"echo "$KEY ${OPTIONAL-unset}""#, json!({}));
        set_env(
            &mut bad,
            1,
            json!({"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "nope"}}}),
        );
        bad["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "OPTIONAL", "valueFrom": {"secretKeyRef":
                {"name": "keys", "key": "absent", "optional": true}}}));
        kube.insert(bad).unwrap();
        let pod = waiting_pod(&kube, "bad-ref", "CreateContainerConfigError").await;
        assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
        assert_eq!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
            "couldn't find key nope in Secret batch/keys"
        );
        let job_now = kube.get("jobs", Some("batch"), "bad-ref").unwrap();
        assert_eq!(finished(&job_now), None, "not a failure: {job_now}");
        assert_eq!(job_now["status"]["active"], 1);
        assert!(job_now["status"]["failed"].is_null(), "{job_now}");
        // The key appears: the kubelet starts the container, and the Job completes.
        assert!(kube.remove("secrets", Some("batch"), "keys"));
        kube.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "batch"},
            "data": {"key": STANDARD.encode("s3cret"), "nope": STANDARD.encode("found")}}))
            .unwrap();
        let done = finished_job(&kube.cluster, "batch", "bad-ref").await;
        assert_eq!(finished(&done), Some("Complete"), "{done}");
        let pods = pods_of(&kube, "bad-ref");
        assert_eq!(pods.len(), 1, "the same pod started");
        let log = std::fs::read_to_string(log_path(
            pods_root.path(),
            "batch",
            pods[0]["metadata"]["name"].as_str().unwrap(),
        ))
        .unwrap();
        assert_eq!(
            log, "found unset\n",
            "an optional key that is missing is unset"
        );

        // A Secret or ConfigMap that does not exist at all, as the kubelet names them.
        for (name, var, message) in [
            (
                "no-secret",
                json!({"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "vault", "key": "key"}}}),
                "secret \"vault\" not found",
            ),
            (
                "no-config-map",
                json!({"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "other", "key": "key"}}}),
                "configmap \"other\" not found",
            ),
            (
                "no-config-key",
                json!({"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}),
                "couldn't find key nope in ConfigMap batch/settings",
            ),
        ] {
            let mut missing = job(name, "exit 0", json!({}));
            set_env(&mut missing, 1, var);
            kube.insert(missing).unwrap();
            let pod = waiting_pod(&kube, name, "CreateContainerConfigError").await;
            assert_eq!(
                pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
                message
            );
        }
        kube.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault", "namespace": "batch"},
            "data": {"key": STANDARD.encode("v")}}))
            .unwrap();
        let done = finished_job(&kube.cluster, "batch", "no-secret").await;
        assert_eq!(finished(&done), Some("Complete"), "{done}");
    }

    #[tokio::test]
    async fn a_pod_that_cannot_start_fails_its_job_when_the_deadline_passes() {
        let (kube, _pods) = kube_with_shell().await;
        let mut bad = job("stuck", "exit 0", json!({"activeDeadlineSeconds": 1}));
        set_env(
            &mut bad,
            1,
            json!({"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "nope"}}}),
        );
        kube.insert(bad).unwrap();
        waiting_pod(&kube, "stuck", "CreateContainerConfigError").await;
        let done = finished_job(&kube.cluster, "batch", "stuck").await;
        for kind in ["FailureTarget", "Failed"] {
            let failed = condition(&done, kind);
            assert_eq!(failed["reason"], "DeadlineExceeded", "{done}");
            assert_eq!(
                failed["message"],
                "Job was active longer than specified deadline"
            );
        }
        let status = &done["status"];
        assert_eq!(status["failed"], 1, "the deleted pod counts as failed");
        assert_eq!(
            (status["terminating"].clone(), status["ready"].clone()),
            (json!(0), json!(0))
        );
        assert!(
            status["active"].is_null() && status["completionTime"].is_null(),
            "{done}"
        );
        assert!(
            pods_of(&kube, "stuck").is_empty(),
            "the Job controller deleted its pod"
        );
    }

    #[tokio::test]
    async fn a_missing_volume_or_image_leaves_the_pod_pending_until_it_appears() {
        let (kube, _pods) = kube_with_shell().await;
        let mut unmounted = job("no-volume", "exit 0", json!({}));
        unmounted["spec"]["template"]["spec"]["volumes"][0] =
            json!({"name": "cfg", "secret": {"secretName": "files"}});
        kube.insert(unmounted).unwrap();
        let pod = waiting_pod(&kube, "no-volume", "ContainerCreating").await;
        assert_eq!(pod["status"]["phase"], "Pending");
        assert!(
            pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"].is_null(),
            "the kubelet says why in a FailedMount event only: {pod}"
        );
        kube.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "files", "namespace": "batch"},
            "data": {"file.txt": STANDARD.encode("x")}}))
            .unwrap();
        let done = finished_job(&kube.cluster, "batch", "no-volume").await;
        assert_eq!(finished(&done), Some("Complete"), "{done}");

        let mut unknown = job("bad-image", "exit 0", json!({}));
        unknown["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
        kube.insert(unknown).unwrap();
        let pod = waiting_pod(&kube, "bad-image", "ErrImagePull").await;
        assert_eq!(pod["status"]["phase"], "Pending");
        let pod = waiting_pod(&kube, "bad-image", "ImagePullBackOff").await;
        let message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with("Back-off pulling image \"nginx\": ErrImagePull: "),
            "{message}"
        );
        assert_eq!(
            finished(&kube.get("jobs", Some("batch"), "bad-image").unwrap()),
            None
        );
        kube.map_image("nginx", Path::new("/bin/sh"));
        let done = finished_job(&kube.cluster, "batch", "bad-image").await;
        assert_eq!(finished(&done), Some("Complete"), "{done}");
    }

    fn cron_job(extra: Value) -> Value {
        let mut cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "batch", "creationTimestamp": "2026-11-28T12:00:00Z"},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid",
                "jobTemplate": {"metadata": {"labels": {"app": "x"}}, "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "none"}]}}}}}});
        if let (Some(spec), Some(extra)) = (cron_job["spec"].as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        cron_job
    }

    #[test]
    fn a_cron_job_starts_a_job_when_due_and_forbids_overlap() {
        let cluster = new_cluster(&FakeKubeOptions::default());
        cluster.insert(cron_job(json!({}))).unwrap();
        let cron_jobs = resource(&cluster, "cronjobs");
        let get = || cluster.get(&cron_jobs, Some("batch"), "nightly").unwrap();
        let jobs = || -> Vec<Value> {
            cluster
                .lock()
                .objects("jobs")
                .map(|(_, j)| (**j).clone())
                .collect()
        };
        sync_cron_job(&cluster, &get(), at("2026-11-29T01:59:00Z"));
        assert!(jobs().is_empty(), "not due before 03:00 Berlin (02:00 UTC)");
        sync_cron_job(&cluster, &get(), at("2026-11-29T02:00:30Z"));
        let started = jobs();
        assert_eq!(started.len(), 1);
        let job = &started[0];
        assert_eq!(
            job["metadata"]["name"],
            format!("nightly-{}", at("2026-11-29T02:00:00Z").timestamp() / 60)
        );
        assert_eq!(job["metadata"]["labels"]["app"], "x");
        assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        let status = get()["status"].clone();
        assert_eq!(status["lastScheduleTime"], "2026-11-29T02:00:00Z");
        assert_eq!(status["active"][0]["name"], job["metadata"]["name"]);
        // The next night, the first Job still runs: Forbid skips the run.
        sync_cron_job(&cluster, &get(), at("2026-11-30T02:00:30Z"));
        assert_eq!(jobs().len(), 1);
        assert_eq!(get()["status"]["lastScheduleTime"], "2026-11-29T02:00:00Z");
        // Once it completed, the CronJob records the success and runs again when due.
        let jobs_type = resource(&cluster, "jobs");
        let name = job["metadata"]["name"].as_str().unwrap();
        cluster.update_status(&jobs_type, Some("batch"), name, |old| {
            let mut new = old.clone();
            new["status"] = json!({"succeeded": 1, "startTime": "2026-11-29T02:00:31Z", "completionTime": "2026-11-29T02:01:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]});
            Ok(new)
        }, &manager()).unwrap();
        sync_cron_job(&cluster, &get(), at("2026-11-30T02:00:40Z"));
        let status = get()["status"].clone();
        assert_eq!(status["lastSuccessfulTime"], "2026-11-29T02:01:00Z");
        assert_eq!(status["lastScheduleTime"], "2026-11-30T02:00:00Z");
        assert_eq!(jobs().len(), 2);
    }

    #[test]
    fn a_suspended_or_late_cron_job_starts_nothing() {
        let cluster = new_cluster(&FakeKubeOptions::default());
        cluster.insert(cron_job(json!({"suspend": true}))).unwrap();
        let cron_jobs = resource(&cluster, "cronjobs");
        let get = || cluster.get(&cron_jobs, Some("batch"), "nightly").unwrap();
        sync_cron_job(&cluster, &get(), at("2026-11-29T02:00:30Z"));
        assert_eq!(cluster.lock().objects("jobs").count(), 0, "suspended");
        cluster.lock().remove(
            "cronjobs",
            &super::super::store::key_of(Some("batch"), "nightly"),
        );
        cluster
            .insert(cron_job(json!({"startingDeadlineSeconds": 60})))
            .unwrap();
        sync_cron_job(&cluster, &get(), at("2026-11-29T02:05:00Z"));
        assert_eq!(
            cluster.lock().objects("jobs").count(),
            0,
            "missed by more than the starting deadline"
        );
    }
}
