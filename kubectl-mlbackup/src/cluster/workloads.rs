//! The app's workloads (apps/v1 Deployments and StatefulSets): listing them by label, getting
//! them by name, changing their replica count and an annotation in one conditional request, and
//! finding the pods that are theirs: those they control through `ownerReferences` (a
//! Deployment through its ReplicaSets), not every pod that carries their labels. All read as
//! k8s-openapi's types.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::core::Selector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::list::{self, ServedResource};
use super::objects::{FIELD_MANAGER, send_to};
use super::transport::decode_error;
use super::{Cluster, ClusterError};

/// The kinds of workload the app runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 2] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];

    /// `deployment`, as in kubectl's `deployment.apps/NAME`.
    pub fn singular(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }

    /// `deployments.apps/v1` (RBAC names it `deployments.apps`).
    fn resource(self) -> ServedResource {
        match self {
            WorkloadKind::Deployment => resource_of::<Deployment>(),
            WorkloadKind::StatefulSet => resource_of::<StatefulSet>(),
        }
    }
}

/// The resource of a k8s-openapi type (all those read here are namespaced).
pub(super) fn resource_of<K: k8s_openapi::Resource>() -> ServedResource {
    ServedResource {
        group: K::GROUP.into(),
        version: K::VERSION.into(),
        kind: K::KIND.into(),
        plural: K::URL_PATH_SEGMENT.into(),
        namespaced: true,
    }
}

/// A workload as read from the API server: what scaling needs to know and to check.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub generation: i64,
    /// `spec.replicas` (the API server defaults a missing one to 1).
    pub replicas: i64,
    pub annotations: BTreeMap<String, String>,
    /// `spec.selector` as a label selector string (empty when the object has none).
    pub selector: String,
    pub observed_generation: i64,
    /// `status.replicas`: pods the controller counts (terminating ones not included for
    /// Deployments); missing means 0, as the API leaves zero counts out.
    pub status_replicas: i64,
    pub ready_replicas: i64,
}

impl Workload {
    /// A workload of `kind` as the API server sent it (a Deployment or a StatefulSet).
    fn read(cluster: &Cluster, kind: WorkloadKind, object: Value) -> Result<Self, ClusterError> {
        let decoded = match kind {
            WorkloadKind::Deployment => serde_json::from_value(object).map(Self::from_deployment),
            WorkloadKind::StatefulSet => {
                serde_json::from_value(object).map(Self::from_stateful_set)
            }
        };
        decoded.map_err(|err| decode_error(cluster, err))
    }

    pub fn from_deployment(deployment: Deployment) -> Self {
        let spec = deployment.spec.unwrap_or_default();
        let status = deployment.status.unwrap_or_default();
        Workload::new(
            WorkloadKind::Deployment,
            deployment.metadata,
            spec.replicas,
            &spec.selector,
            (
                status.observed_generation,
                status.replicas,
                status.ready_replicas,
            ),
        )
    }

    pub fn from_stateful_set(stateful_set: StatefulSet) -> Self {
        let spec = stateful_set.spec.unwrap_or_default();
        let status = stateful_set.status.unwrap_or_default();
        Workload::new(
            WorkloadKind::StatefulSet,
            stateful_set.metadata,
            spec.replicas,
            &spec.selector,
            (
                status.observed_generation,
                Some(status.replicas),
                status.ready_replicas,
            ),
        )
    }

    /// `status` is (observedGeneration, replicas, readyReplicas); the API server defaults a
    /// missing `spec.replicas` to 1 and leaves zero counts out.
    fn new(
        kind: WorkloadKind,
        metadata: ObjectMeta,
        replicas: Option<i32>,
        selector: &LabelSelector,
        status: (Option<i64>, Option<i32>, Option<i32>),
    ) -> Self {
        let (observed_generation, status_replicas, ready_replicas) = status;
        Workload {
            kind,
            namespace: metadata.namespace.unwrap_or_default(),
            name: metadata.name.unwrap_or_default(),
            uid: metadata.uid.unwrap_or_default(),
            resource_version: metadata.resource_version.unwrap_or_default(),
            generation: metadata.generation.unwrap_or(0),
            replicas: replicas.map_or(1, i64::from),
            annotations: metadata.annotations.unwrap_or_default(),
            // An operator the API server would refuse cannot be in a stored object.
            selector: Selector::try_from(selector.clone())
                .map(|selector| selector.to_string())
                .unwrap_or_default(),
            observed_generation: observed_generation.unwrap_or(0),
            status_replicas: status_replicas.map_or(0, i64::from),
            ready_replicas: ready_replicas.map_or(0, i64::from),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }

    /// `deployment/NAME`.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.singular(), self.name)
    }

    /// Whether the controller has seen the current spec (its status describes it).
    pub fn observed(&self) -> bool {
        self.observed_generation >= self.generation
    }
}

/// The workloads of `kind` in `namespace` that match `selector`, every page read.
pub async fn list(
    cluster: &Cluster,
    kind: WorkloadKind,
    namespace: &str,
    selector: &str,
) -> Result<Vec<Workload>, ClusterError> {
    list::all(cluster, &kind.resource(), Some(namespace), selector)
        .await?
        .into_iter()
        .map(|object| Workload::read(cluster, kind, object))
        .collect()
}

/// Every object of type `K` in `namespace` that matches `selector`, every page read.
async fn list_of<K: k8s_openapi::Resource + DeserializeOwned>(
    cluster: &Cluster,
    namespace: &str,
    selector: &str,
) -> Result<Vec<K>, ClusterError> {
    list::all(cluster, &resource_of::<K>(), Some(namespace), selector)
        .await?
        .into_iter()
        .map(|object| serde_json::from_value(object).map_err(|err| decode_error(cluster, err)))
        .collect()
}

/// One workload by name; `None` when there is none of that kind and name.
pub async fn get(
    cluster: &Cluster,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<Workload>, ClusterError> {
    let answer = send_to(cluster, &kind.resource(), namespace, "get", |request| {
        request.get(name, &Default::default())
    })
    .await;
    match answer {
        Ok(answer) => Ok(Some(Workload::read(cluster, kind, answer.json(cluster)?)?)),
        Err(ClusterError::NotFound { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Sets `spec.replicas` and one annotation (`None` removes it) in ONE JSON merge patch that
/// carries the resourceVersion read: the two cannot diverge, and when anyone (an autoscaler, an
/// operator, a person) changed the workload since it was read, the API server answers 409
/// Conflict instead of applying a decision taken on old data. Returns the workload as written.
pub async fn set_replicas(
    cluster: &Cluster,
    workload: &Workload,
    replicas: i64,
    annotation: (&str, Option<String>),
) -> Result<Workload, ClusterError> {
    let (key, value) = annotation;
    let patch = json!({
        "metadata": {
            "resourceVersion": workload.resource_version,
            "annotations": {key: value},
        },
        "spec": {"replicas": replicas},
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let resource = workload.kind.resource();
    let answer = send_to(
        cluster,
        &resource,
        &workload.namespace,
        "patch",
        |request| request.patch(&workload.name, &params, &Patch::Merge(&patch)),
    )
    .await?;
    Workload::read(cluster, workload.kind, answer.json(cluster)?)
}

/// The pods that a workload's selector matches, split by who controls them.
#[derive(Debug, Default)]
pub struct PodsOf {
    /// Controlled by the workload: a StatefulSet's own pods, a Deployment's through one of its
    /// ReplicaSets (each link an `ownerReferences` entry with `controller: true` and the
    /// owner's uid).
    pub controlled: Vec<Pod>,
    /// Carry the labels but are someone else's (another controller's, or created by hand).
    pub strangers: Vec<Pod>,
}

impl PodsOf {
    pub fn stranger_names(&self) -> Vec<String> {
        self.strangers.iter().map(ResourceExt::name_any).collect()
    }
}

/// The uid in the object's controller reference (the `ownerReferences` entry with
/// `controller: true`) when that controller is of `kind`.
fn controller_uid<'a>(object: &'a impl kube::Resource, kind: &str) -> Option<&'a str> {
    object
        .owner_references()
        .iter()
        .find(|owner| owner.controller == Some(true))
        .filter(|owner| owner.kind == kind && owner.api_version == "apps/v1")
        .map(|owner| owner.uid.as_str())
        .filter(|uid| !uid.is_empty())
}

/// The pods in the workload's namespace that its selector matches, terminating ones included
/// (they may still be writing), split into those the workload controls and the others.
pub async fn pods_of(cluster: &Cluster, workload: &Workload) -> Result<PodsOf, ClusterError> {
    if workload.selector.is_empty() || workload.uid.is_empty() {
        // A selector-less workload cannot own pods (apps/v1 requires one): never list every
        // pod of the namespace instead.
        return Ok(PodsOf::default());
    }
    let pods: Vec<Pod> = list_of(cluster, &workload.namespace, &workload.selector).await?;
    // The uids whose pods are the workload's: the StatefulSet's own, or those of the
    // ReplicaSets the Deployment controls (ReplicaSets carry the pod template's labels, which
    // the Deployment's selector matches).
    let (pod_owner_kind, owners): (&str, Vec<String>) = match workload.kind {
        WorkloadKind::StatefulSet => ("StatefulSet", vec![workload.uid.clone()]),
        WorkloadKind::Deployment => {
            let replica_sets: Vec<ReplicaSet> =
                list_of(cluster, &workload.namespace, &workload.selector).await?;
            let owned = replica_sets
                .iter()
                .filter(|rs| controller_uid(*rs, "Deployment") == Some(workload.uid.as_str()))
                .filter_map(ResourceExt::uid)
                .collect();
            ("ReplicaSet", owned)
        }
    };
    let (controlled, strangers) = pods.into_iter().partition(|pod| {
        controller_uid(pod, pod_owner_kind).is_some_and(|uid| owners.iter().any(|o| o == uid))
    });
    Ok(PodsOf {
        controlled,
        strangers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_read_typed_with_their_selector_and_the_api_defaults() {
        let deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "mmapp-app", "namespace": "dr", "uid": "u-1",
                         "resourceVersion": "9", "generation": 4,
                         "annotations": {"a": "b"}},
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"tier": "web", "app": "mmapp"},
                    "matchExpressions": [
                        {"key": "env", "operator": "In", "values": ["prod", "dr"]},
                        {"key": "canary", "operator": "DoesNotExist"}
                    ]
                },
                "template": {"metadata": {"labels": {"app": "mmapp", "tier": "web"}}}
            },
            "status": {"observedGeneration": 4, "replicas": 3, "readyReplicas": 2}
        }))
        .unwrap();
        let workload = Workload::from_deployment(deployment);
        assert_eq!(
            (
                workload.namespace.as_str(),
                workload.name.as_str(),
                workload.uid.as_str(),
                workload.resource_version.as_str()
            ),
            ("dr", "mmapp-app", "u-1", "9")
        );
        assert_eq!(workload.display_name(), "deployment/mmapp-app");
        assert_eq!(workload.annotation("a"), Some("b"));
        assert_eq!(
            workload.selector,
            "app=mmapp,tier=web,env in (dr,prod),!canary"
        );
        assert_eq!(
            (
                workload.replicas,
                workload.status_replicas,
                workload.ready_replicas
            ),
            (3, 3, 2)
        );
        assert!(workload.observed());

        // What the API server leaves out: replicas defaults to 1, zero counts are absent.
        let stateful_set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                     "template": {}},
            "status": {"observedGeneration": 1, "replicas": 0}
        }))
        .unwrap();
        let workload = Workload::from_stateful_set(stateful_set);
        assert_eq!(workload.display_name(), "statefulset/db");
        assert_eq!(workload.selector, "app=db");
        assert_eq!(
            (
                workload.replicas,
                workload.status_replicas,
                workload.ready_replicas
            ),
            (1, 0, 0)
        );
        assert!(!workload.observed(), "generation 2 is not observed yet");
    }
}
