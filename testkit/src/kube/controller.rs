//! The Deployment and StatefulSet controllers of a real cluster, simulated: a delay after a
//! workload's `spec.replicas` (or generation) changes, missing pods are created Running and
//! Ready, surplus pods start terminating and are gone one more delay later, and `status`
//! follows. Clients that wait for a scale-down or a scale-up therefore really wait, and see the
//! intermediate states a real cluster shows (status at zero while pods still terminate).
//!
//! Ownership is a real cluster's: a Deployment controls one ReplicaSet (`NAME-<template hash>`)
//! which controls the pods; a StatefulSet controls its pods directly (`ownerReferences` with
//! `controller: true` and the owner's uid). The ReplicaSet level is reconciled together with its
//! Deployment: a ReplicaSet changed directly is not acted on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::api::{self, Cluster, WORKLOADS, desired_replicas};
use super::discovery::fnv_hash;
use super::store::{EventType, ObjectKey, Store, key_of};

/// The image of every simulated app container.
const APP_IMAGE: &str = "datarobot/mmapp:11.1.1";

/// Runs the controllers until the returned task is aborted.
pub fn spawn(cluster: Arc<Cluster>, delay: Duration) -> tokio::task::JoinHandle<()> {
    let mut events = cluster.lock().subscribe();
    // One reconciliation at a time, so two events of the same workload never both add pods.
    let turn = Arc::new(Mutex::new(()));
    tokio::spawn(async move {
        loop {
            let keys: Vec<(String, ObjectKey)> = match events.recv().await {
                Ok(event)
                    if event.kind != EventType::Deleted
                        && WORKLOADS.contains(&event.plural.as_str()) =>
                {
                    let metadata = &event.object["metadata"];
                    vec![(
                        event.plural.clone(),
                        key_of(
                            metadata["namespace"].as_str(),
                            metadata["name"].as_str().unwrap_or_default(),
                        ),
                    )]
                }
                Ok(_) => continue,
                // Missed events: look at every workload.
                Err(RecvError::Lagged(_)) => {
                    let store = cluster.lock();
                    WORKLOADS
                        .iter()
                        .flat_map(|plural| {
                            store
                                .objects(plural)
                                .map(|(key, _)| (plural.to_string(), key.clone()))
                                .collect::<Vec<_>>()
                        })
                        .collect()
                }
                Err(RecvError::Closed) => return,
            };
            for (plural, key) in keys {
                let cluster = cluster.clone();
                let turn = turn.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut terminating = {
                        let _turn = turn.lock().unwrap();
                        reconcile(&cluster, &plural, &key)
                    };
                    // Terminating pods are gone after one more delay (their grace period); a
                    // StatefulSet may then create a pod under a name that is free again.
                    while !terminating.is_empty() {
                        tokio::time::sleep(delay).await;
                        let _turn = turn.lock().unwrap();
                        remove_pods(&cluster, &terminating);
                        terminating = reconcile(&cluster, &plural, &key);
                    }
                });
            }
        }
    })
}

/// Removes the pods that are still the ones marked (same uid).
fn remove_pods(cluster: &Cluster, pods: &[(ObjectKey, String)]) {
    let mut store = cluster.lock();
    for (pod, uid) in pods {
        let still_ours = store
            .get("pods", pod)
            .is_some_and(|p| p["metadata"]["uid"] == uid.as_str());
        if still_ours {
            store.remove("pods", pod);
        }
    }
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn owned_by(pod: &Value, uid: &str) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// The StatefulSet ordinal of a pod name `NAME-<n>`.
fn ordinal(workload_name: &str, pod_name: &str) -> Option<usize> {
    pod_name
        .strip_prefix(workload_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// Brings the pods and `status` of one workload in line with its spec, at once. Returns the
/// pods it marked terminating (key and uid), which the caller removes after the grace delay.
pub fn reconcile(cluster: &Cluster, plural: &str, key: &ObjectKey) -> Vec<(ObjectKey, String)> {
    let Some(pods_type) = cluster.catalog.by_plural("pods").cloned() else {
        return Vec::new();
    };
    let mut store = cluster.lock();
    let Some(workload) = store.get(plural, key) else {
        return Vec::new();
    };
    if !workload["metadata"]["deletionTimestamp"].is_null() {
        return Vec::new();
    }
    let name = key.1.as_str();
    let uid = workload["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let stateful = plural == "statefulsets";
    let desired = usize::try_from(desired_replicas(&workload)).unwrap_or(0);
    // Who the pods belong to: the StatefulSet itself, or the Deployment's ReplicaSet.
    let owner = if stateful {
        Owner {
            kind: "StatefulSet",
            name: name.to_string(),
            uid,
        }
    } else {
        match replica_set_of(cluster, &mut store, &workload, &uid, desired) {
            Some(owner) => owner,
            None => return Vec::new(),
        }
    };
    let mut live: Vec<(ObjectKey, Arc<Value>)> = store
        .objects("pods")
        .filter(|(pod_key, pod)| {
            pod_key.0 == key.0
                && owned_by(pod, &owner.uid)
                && pod["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Scale-down order: StatefulSets drop their highest ordinals, Deployments their newest
    // pods (ties by name, so the order is stable).
    live.sort_by_key(|(pod_key, pod)| {
        if stateful {
            (
                String::new(),
                ordinal(name, &pod_key.1).unwrap_or(usize::MAX),
            )
        } else {
            (
                pod["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
                    + &pod_key.1,
                0,
            )
        }
    });
    let mut terminating = Vec::new();
    while live.len() > desired {
        let (pod_key, pod) = live.pop().expect("more than desired");
        let mut marked = (*pod).clone();
        marked["metadata"]["deletionTimestamp"] = json!(timestamp());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        let pod_uid = marked["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        store.put("pods", pod_key.clone(), marked);
        terminating.push((pod_key, pod_uid));
    }
    let mut count = live.len();
    if stateful {
        // Missing ordinals, lowest first; one whose old pod still terminates waits for it.
        for index in 0..desired {
            let pod_key = key_of(Some(&key.0), &format!("{name}-{index}"));
            if count < desired && store.get("pods", &pod_key).is_none() {
                let pod = running_pod(&workload, &owner, Some(index));
                if Cluster::insert_locked(&mut store, &pods_type, pod).is_ok() {
                    count += 1;
                }
            }
        }
    } else {
        while count < desired {
            let pod = running_pod(&workload, &owner, None);
            if Cluster::insert_locked(&mut store, &pods_type, pod).is_err() {
                break;
            }
            count += 1;
        }
    }
    write_status(&mut store, plural, key, &workload, count);
    if !stateful {
        let rs_key = key_of(Some(&key.0), &owner.name);
        if let Some(replica_set) = store.get("replicasets", &rs_key) {
            write_status(&mut store, "replicasets", &rs_key, &replica_set, count);
        }
    }
    terminating
}

/// What controls a pod: its `ownerReferences` entry with `controller: true`.
pub struct Owner {
    pub kind: &'static str,
    pub name: String,
    pub uid: String,
}

/// The pod template hash of a workload: names its ReplicaSet and labels its pods.
fn template_hash(name: &str) -> String {
    format!("{:x}", fnv_hash(name)).chars().take(10).collect()
}

/// The Deployment's ReplicaSet, created on first sight as the Deployment controller creates it
/// (owned by the Deployment, selector and template labels with `pod-template-hash`), its
/// `spec.replicas` set to the Deployment's.
fn replica_set_of(
    cluster: &Cluster,
    store: &mut Store,
    deployment: &Value,
    deployment_uid: &str,
    desired: usize,
) -> Option<Owner> {
    let metadata = &deployment["metadata"];
    let namespace = metadata["namespace"].as_str().unwrap_or_default();
    let name = metadata["name"].as_str().unwrap_or_default();
    let hash = template_hash(name);
    let rs_name = format!("{name}-{hash}");
    let rs_key = key_of(Some(namespace), &rs_name);
    let replica_set = match store.get("replicasets", &rs_key) {
        Some(existing) => {
            let mut updated = (*existing).clone();
            if updated["spec"]["replicas"] != json!(desired) {
                updated["spec"]["replicas"] = json!(desired);
                let generation = updated["metadata"]["generation"].as_i64().unwrap_or(1);
                updated["metadata"]["generation"] = json!(generation + 1);
                updated["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                    json!(desired.to_string());
                store.put("replicasets", rs_key, updated.clone());
            }
            updated
        }
        None => {
            let resource = cluster.catalog.by_plural("replicasets")?.clone();
            let mut template = deployment["spec"]["template"].clone();
            template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = deployment["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let replica_set = json!({
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "labels": template["metadata"]["labels"],
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": (desired + 1).to_string(),
                        "deployment.kubernetes.io/revision": "1",
                    },
                    "ownerReferences": [{
                        "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                        "uid": deployment_uid, "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": {"replicas": desired, "selector": selector, "template": template},
                "status": {},
            });
            Cluster::insert_locked(store, &resource, replica_set).ok()?
        }
    };
    Some(Owner {
        kind: "ReplicaSet",
        name: rs_name,
        uid: replica_set["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// The status the controller reports for `ready` running pods; zero counts are left out, as
/// the real API (`omitempty`) does.
fn write_status(store: &mut Store, plural: &str, key: &ObjectKey, workload: &Value, ready: usize) {
    let generation = workload["metadata"]["generation"].clone();
    let mut status = workload["status"].as_object().cloned().unwrap_or_default();
    status.insert("observedGeneration".into(), generation);
    let counts: &[&str] = match plural {
        "statefulsets" => &[
            "replicas",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
        ],
        "replicasets" => &[
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
        ],
        _ => &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ],
    };
    for field in counts {
        if ready == 0 && !(plural == "statefulsets" && *field == "replicas") {
            status.remove(*field);
        } else {
            status.insert(field.to_string(), json!(ready));
        }
    }
    if plural == "deployments" && !status.contains_key("conditions") {
        status.insert(
            "conditions".into(),
            json!([{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]),
        );
    }
    let status = Value::Object(status);
    if workload["status"] != status {
        let mut updated = workload.clone();
        updated["status"] = status;
        store.put(plural, key.clone(), updated);
    }
}

/// A Running, Ready pod of a workload, controlled by `owner` (the StatefulSet, or the
/// Deployment's ReplicaSet), named like the real controllers name them: ReplicaSet pods
/// `NAME-<template hash>-<5 chars>`, StatefulSet pods `NAME-<ordinal>`. Labels and containers
/// come from the pod template.
pub fn running_pod(workload: &Value, owner: &Owner, ordinal: Option<usize>) -> Value {
    let metadata = &workload["metadata"];
    let name = metadata["name"].as_str().unwrap_or_default();
    let template = &workload["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let hash = template_hash(name);
    let pod_name = match ordinal {
        Some(index) if owner.kind == "StatefulSet" => {
            let pod_name = format!("{name}-{index}");
            labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
            labels["apps.kubernetes.io/pod-index"] = json!(index.to_string());
            labels["controller-revision-hash"] = json!(format!("{name}-{hash}"));
            pod_name
        }
        _ => {
            labels["pod-template-hash"] = json!(hash);
            api::generate_name(&format!("{name}-{hash}-"))
        }
    };
    let containers = template["spec"]["containers"].clone();
    let started = timestamp();
    let statuses: Vec<Value> = containers
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({
                "name": c["name"], "ready": true, "started": true, "restartCount": 0,
                "image": c["image"], "imageID": "",
                "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": metadata["namespace"],
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": owner.kind, "name": owner.name,
                "uid": owner.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {"containers": containers, "nodeName": "fake-node-1", "restartPolicy": "Always"},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": statuses,
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.10",
            "startTime": started,
            "qosClass": "BestEffort",
        },
    })
}

/// An app workload to seed: a Deployment or StatefulSet with `replicas` Running, Ready pods.
#[derive(Clone, Debug)]
pub struct AppWorkload {
    pub namespace: String,
    pub name: String,
    /// `true`: a StatefulSet; `false`: a Deployment.
    pub stateful: bool,
    pub replicas: u32,
    /// Labels of the workload and its pods besides `app` and `app.kubernetes.io/name` (which
    /// are its selector), like `release=dr`.
    pub labels: Vec<(String, String)>,
}

impl AppWorkload {
    pub fn deployment(namespace: &str, name: &str, replicas: u32) -> Self {
        AppWorkload {
            namespace: namespace.to_string(),
            name: name.to_string(),
            stateful: false,
            replicas,
            labels: Vec::new(),
        }
    }

    pub fn stateful_set(namespace: &str, name: &str, replicas: u32) -> Self {
        AppWorkload {
            stateful: true,
            ..AppWorkload::deployment(namespace, name, replicas)
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    pub fn plural(&self) -> &'static str {
        if self.stateful {
            "statefulsets"
        } else {
            "deployments"
        }
    }

    /// The workload object as stored, its status already describing its running pods.
    pub fn object(&self) -> Value {
        let name = &self.name;
        let selector = json!({"app": name, "app.kubernetes.io/name": name});
        let mut labels = selector.clone();
        for (key, value) in &self.labels {
            labels[key] = json!(value);
        }
        let container = json!({
            "name": name,
            "image": APP_IMAGE,
            "command": ["/entrypoint.sh"],
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        });
        let mut spec = json!({
            "replicas": self.replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        });
        let replicas = self.replicas;
        let status = if self.stateful {
            spec["serviceName"] = json!(name);
            spec["podManagementPolicy"] = json!("OrderedReady");
            let revision = format!("{name}-{}", template_hash(name));
            json!({
                "observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                "currentReplicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": replicas, "currentRevision": revision,
                "updateRevision": revision, "collisionCount": 0,
            })
        } else {
            json!({
                "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
            })
        };
        let mut status = status;
        if replicas == 0
            && let Some(map) = status.as_object_mut()
        {
            map.retain(|field, value| {
                !(value == &json!(0) && !(self.stateful && field == "replicas"))
                    || field == "collisionCount"
            });
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": if self.stateful { "StatefulSet" } else { "Deployment" },
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": spec,
            "status": status,
        })
    }
}
