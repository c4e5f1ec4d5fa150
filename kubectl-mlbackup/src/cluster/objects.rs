//! Reads and writes of objects: list and get (each object with its head read), server-side
//! apply, replace, deletion, namespace creation; all through the one retry policy of
//! `transport`, with 403s naming the missing permission.

use http::StatusCode;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Value, json};

use super::list::{self, ServedResource};
use super::transport::{Answer, decode_error, send};
use super::{Cluster, ClusterError, RequestScope};
use crate::object::{Head, Object};

/// The field manager of every write, as `kubectl` uses `kubectl` (and `kubectl-client-side-apply`).
pub const FIELD_MANAGER: &str = "kubectl-mlbackup";

/// Requests per-object work keeps in flight: fast on a big cluster, gentle on the API server's
/// priority and fairness limits (kubectl's default client-side QPS is 5 with bursts of 10; a
/// single user's flow rarely gets more than a few dozen concurrent seats).
pub const MAX_IN_FLIGHT: usize = 16;

/// Whether the API server persists a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    Yes,
    /// `dryRun=All`: validated and admitted, never stored.
    DryRun,
}

/// The parameters of a PUT or POST: field manager [`FIELD_MANAGER`], dry run or not.
fn post_params(persist: Persist) -> PostParams {
    PostParams {
        dry_run: persist == Persist::DryRun,
        field_manager: Some(FIELD_MANAGER.to_string()),
    }
}

/// What a server-side apply did.
#[derive(Debug)]
pub struct Applied {
    /// 201: the object did not exist.
    pub created: bool,
}

/// Server-side apply of `object` (field manager [`FIELD_MANAGER`]): creates the object when it
/// does not exist, else sets the fields it holds; a field another manager set to another value is
/// a 409 conflict (no force: an object that appeared meanwhile is not taken over silently).
/// Field validation is strict, as `kubectl apply --server-side` asks for it. (For an apply it
/// only refuses duplicate keys: a field the resource's schema does not declare fails the apply
/// whatever it says, with a 500 `field not declared in schema`; see `transport`.)
pub async fn apply(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: &str,
    name: &str,
    object: &Value,
    persist: Persist,
) -> Result<Applied, ClusterError> {
    let mut params = PatchParams::apply(FIELD_MANAGER).validation_strict();
    params.dry_run = persist == Persist::DryRun;
    let answer = send_to(cluster, resource, namespace, "patch", |request| {
        request.patch(name, &params, &Patch::Apply(object))
    })
    .await?;
    Ok(Applied {
        created: answer.status == StatusCode::CREATED,
    })
}

/// Every object of the resource in `namespace` (`None`: all namespaces) that matches
/// `selector`, every page read, each with its head read.
pub async fn list(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    selector: &str,
) -> Result<Vec<Object>, ClusterError> {
    list::all(cluster, resource, namespace, selector)
        .await?
        .into_iter()
        .map(|value| read_head(cluster, value))
        .collect()
}

/// An object the API server sent, with its head read (a head that cannot be read is a bad
/// answer).
pub fn read_head(cluster: &Cluster, value: Value) -> Result<Object, ClusterError> {
    Object::new(value).map_err(|err| decode_error(cluster, err))
}

/// One object as the server has it now; `None` when it does not exist.
pub async fn get(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: &str,
    name: &str,
) -> Result<Option<Object>, ClusterError> {
    let answer = send_to(cluster, resource, namespace, "get", |request| {
        request.get(name, &Default::default())
    })
    .await;
    match answer {
        Ok(answer) => Ok(Some(read_head(cluster, answer.json(cluster)?)?)),
        Err(ClusterError::NotFound { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Replaces an existing object (PUT, field manager [`FIELD_MANAGER`]) with `object`, which
/// carries the `resourceVersion` it was made from: when the object changed since, the server
/// refuses with 409 Conflict (see [`is_conflict`]) and nothing is written. Returns the object as
/// written (or as it would be, in a dry run).
pub async fn replace(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: &str,
    name: &str,
    object: &Value,
    persist: Persist,
) -> Result<Value, ClusterError> {
    let params = post_params(persist);
    let body = serde_json::to_vec(object).map_err(|source| decode_error(cluster, source))?;
    send_to(cluster, resource, namespace, "update", |request| {
        request.replace(name, &params, body)
    })
    .await?
    .json(cluster)
}

/// Builds a request on the collection of `resource` in `namespace` and sends it; `verb` names
/// the permission a 403 lacks.
pub(super) async fn send_to(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: &str,
    verb: &str,
    build: impl FnOnce(
        kube::core::Request,
    ) -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<Answer, ClusterError> {
    let request = build(kube::core::Request::new(
        resource.collection_path(Some(namespace)),
    ))
    .map_err(|err| cluster.build_error(err))?;
    let qualified = resource.qualified_name();
    let scope = RequestScope {
        verb,
        resource: &qualified,
        namespace: Some(namespace),
    };
    send(cluster, request, &scope).await
}

/// Whether a write was refused because the object changed since it was read (409 Conflict with
/// reason `Conflict`, not `AlreadyExists`).
pub fn is_conflict(err: &ClusterError) -> bool {
    matches!(err, ClusterError::Api { code: 409, reason, .. } if reason == "Conflict")
}

/// What a delete request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Removed (or, in a dry run, would be).
    Gone,
    /// Marked for deletion; these finalizers still hold it.
    Pending { finalizers: Vec<String> },
    /// It was not there (404): deleted by someone else, or by an earlier attempt of ours.
    AlreadyGone,
}

/// Deletes one object with background propagation, only if it still has `uid` (a new object
/// that took the same name is never deleted: that answers 409).
pub async fn delete(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: &str,
    name: &str,
    uid: &str,
    persist: Persist,
) -> Result<Deleted, ClusterError> {
    let mut params = DeleteParams::background();
    params.dry_run = persist == Persist::DryRun;
    params.preconditions = Some(Preconditions {
        uid: Some(uid.to_string()),
        resource_version: None,
    });
    let answer = send_to(cluster, resource, namespace, "delete", |request| {
        request.delete(name, &params)
    })
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(ClusterError::NotFound { .. }) => return Ok(Deleted::AlreadyGone),
        Err(err) => return Err(err),
    };
    // The answer is the object (custom resources) or a `Status`; an object still marked for
    // deletion with finalizers is not gone yet.
    let head: Head = answer.json(cluster)?;
    if head.is_being_deleted() && !head.finalizers().is_empty() {
        Ok(Deleted::Pending {
            finalizers: head.finalizers().to_vec(),
        })
    } else {
        Ok(Deleted::Gone)
    }
}

/// Creates a namespace; `false` when it exists already.
pub async fn create_namespace(
    cluster: &Cluster,
    name: &str,
    persist: Persist,
) -> Result<bool, ClusterError> {
    let params = post_params(persist);
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let request = kube::core::Request::new("/api/v1/namespaces")
        .create(&params, serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|err| cluster.build_error(err))?;
    let scope = RequestScope {
        verb: "create",
        resource: "namespaces",
        namespace: None,
    };
    match send(cluster, request, &scope).await {
        Ok(_) => Ok(true),
        Err(ClusterError::Api { code: 409, .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Whether a namespace exists; `None` when the user may not read namespaces (common for
/// namespace-scoped roles), so the caller cannot tell.
pub async fn namespace_exists(cluster: &Cluster, name: &str) -> Result<Option<bool>, ClusterError> {
    let request = kube::core::Request::new("/api/v1/namespaces")
        .get(name, &Default::default())
        .map_err(|err| cluster.build_error(err))?;
    let scope = RequestScope {
        verb: "get",
        resource: "namespaces",
        namespace: None,
    };
    match send(cluster, request, &scope).await {
        Ok(_) => Ok(Some(true)),
        Err(ClusterError::NotFound { .. }) => Ok(Some(false)),
        Err(ClusterError::Forbidden { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether a 404 of a write in `namespace` means the namespace does not exist (the message
/// of the NamespaceLifecycle admission plugin) rather than the object or its type.
pub fn is_missing_namespace(err: &ClusterError, namespace: &str) -> bool {
    matches!(err, ClusterError::NotFound { message }
        if *message == format!("namespaces \"{namespace}\" not found"))
}

/// Creates `object` (POST, field manager [`FIELD_MANAGER`]); a `generateName` is filled in by
/// the server. Returns the object as created. An object of that name answers 409
/// (`AlreadyExists`).
pub async fn create(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: &str,
    object: &Value,
    persist: Persist,
) -> Result<Value, ClusterError> {
    let params = post_params(persist);
    let body = serde_json::to_vec(object).map_err(|source| decode_error(cluster, source))?;
    send_to(cluster, resource, namespace, "create", |request| {
        request.create(&params, body)
    })
    .await?
    .json(cluster)
}

/// The last `lines` lines a pod's (only) container wrote, as `kubectl logs --tail` reads them.
pub async fn pod_log_tail(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    lines: u32,
) -> Result<String, ClusterError> {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{pod}/log?tailLines={lines}");
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|err| cluster.build_error(kube::core::request::Error::BuildRequest(err)))?;
    let scope = RequestScope {
        verb: "get",
        resource: "pods/log",
        namespace: Some(namespace),
    };
    let answer = send(cluster, request, &scope).await?;
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}
