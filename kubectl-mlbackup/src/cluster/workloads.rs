//! The app's workloads (apps/v1 Deployments and StatefulSets): listing them by label, getting
//! them by name, changing their replica count and an annotation in one conditional request, and
//! finding the pods that are theirs: those they control through `ownerReferences` (a
//! Deployment through its ReplicaSets), not every pod that carries their labels.

use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};

use super::list::{self, ServedResource};
use super::objects::FIELD_MANAGER;
use super::transport::{send, send_json};
use super::{Cluster, ClusterError, RequestScope};

/// The kinds of workload the app runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 2] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];

    pub fn plural(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }
    }

    /// `deployments.apps`: the name kubectl and RBAC use.
    pub fn qualified(self) -> String {
        format!("{}.apps", self.plural())
    }

    /// `deployment`, as in kubectl's `deployment.apps/NAME`.
    pub fn singular(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }

    fn resource(self) -> ServedResource {
        ServedResource {
            group: "apps".into(),
            version: "v1".into(),
            kind: format!("{self:?}"),
            plural: self.plural().into(),
            namespaced: true,
        }
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
    pub annotations: serde_json::Map<String, Value>,
    /// `spec.selector` as a label selector string (empty when the object has none).
    pub selector: String,
    pub observed_generation: i64,
    /// `status.replicas`: pods the controller counts (terminating ones not included for
    /// Deployments); missing means 0, as the API leaves zero counts out.
    pub status_replicas: i64,
    pub ready_replicas: i64,
}

impl Workload {
    pub fn from_object(kind: WorkloadKind, object: &Value) -> Self {
        let metadata = &object["metadata"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let status = &object["status"];
        Workload {
            kind,
            namespace: text(&metadata["namespace"]),
            name: text(&metadata["name"]),
            uid: text(&metadata["uid"]),
            resource_version: text(&metadata["resourceVersion"]),
            generation: metadata["generation"].as_i64().unwrap_or(0),
            replicas: object["spec"]["replicas"].as_i64().unwrap_or(1),
            annotations: metadata["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            selector: super::pod::label_selector(&object["spec"]["selector"]),
            observed_generation: status["observedGeneration"].as_i64().unwrap_or(0),
            status_replicas: status["replicas"].as_i64().unwrap_or(0),
            ready_replicas: status["readyReplicas"].as_i64().unwrap_or(0),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).and_then(Value::as_str)
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
    let objects = list::all(cluster, &kind.resource(), Some(namespace), selector).await?;
    Ok(objects
        .iter()
        .map(|object| Workload::from_object(kind, object))
        .collect())
}

/// One workload by name; `None` when there is none of that kind and name.
pub async fn get(
    cluster: &Cluster,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<Workload>, ClusterError> {
    let request = kube::core::Request::new(kind.resource().collection_path(Some(namespace)))
        .get(name, &Default::default())
        .map_err(|err| cluster.build_error(err))?;
    let qualified = kind.qualified();
    let scope = RequestScope {
        verb: "get",
        resource: &qualified,
        namespace: Some(namespace),
    };
    match send_json::<Value>(cluster, request, &scope).await {
        Ok(object) => Ok(Some(Workload::from_object(kind, &object))),
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
    let request = kube::core::Request::new(
        workload
            .kind
            .resource()
            .collection_path(Some(&workload.namespace)),
    )
    .patch(&workload.name, &params, &Patch::Merge(&patch))
    .map_err(|err| cluster.build_error(err))?;
    let qualified = workload.kind.qualified();
    let scope = RequestScope {
        verb: "patch",
        resource: &qualified,
        namespace: Some(&workload.namespace),
    };
    let answer = send(cluster, request, &scope).await?;
    let object: Value = answer.json(cluster)?;
    Ok(Workload::from_object(workload.kind, &object))
}

/// The pods that a workload's selector matches, split by who controls them.
#[derive(Debug, Default)]
pub struct PodsOf {
    /// Controlled by the workload: a StatefulSet's own pods, a Deployment's through one of its
    /// ReplicaSets (each link an `ownerReferences` entry with `controller: true` and the
    /// owner's uid).
    pub controlled: Vec<Value>,
    /// Carry the labels but are someone else's (another controller's, or created by hand).
    pub strangers: Vec<Value>,
}

impl PodsOf {
    pub fn stranger_names(&self) -> Vec<String> {
        self.strangers.iter().map(name_of).collect()
    }
}

/// `metadata.name` of an object.
pub fn name_of(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The uid in the object's controller reference (the `ownerReferences` entry with
/// `controller: true`) when that controller is of `kind`.
fn controller_uid<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|owner| owner["controller"] == true)
        .filter(|owner| owner["kind"] == kind && owner["apiVersion"] == "apps/v1")
        .and_then(|owner| owner["uid"].as_str())
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
    let pods_resource = ServedResource {
        group: String::new(),
        version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
        namespaced: true,
    };
    let pods = list::all(
        cluster,
        &pods_resource,
        Some(&workload.namespace),
        &workload.selector,
    )
    .await?;
    // The uids whose pods are the workload's: the StatefulSet's own, or those of the
    // ReplicaSets the Deployment controls (ReplicaSets carry the pod template's labels, which
    // the Deployment's selector matches).
    let (pod_owner_kind, owners): (&str, Vec<String>) = match workload.kind {
        WorkloadKind::StatefulSet => ("StatefulSet", vec![workload.uid.clone()]),
        WorkloadKind::Deployment => {
            let replica_sets = ServedResource {
                group: "apps".into(),
                version: "v1".into(),
                kind: "ReplicaSet".into(),
                plural: "replicasets".into(),
                namespaced: true,
            };
            let owned = list::all(
                cluster,
                &replica_sets,
                Some(&workload.namespace),
                &workload.selector,
            )
            .await?
            .iter()
            .filter(|rs| controller_uid(rs, "Deployment") == Some(workload.uid.as_str()))
            .filter_map(|rs| rs["metadata"]["uid"].as_str().map(str::to_string))
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
