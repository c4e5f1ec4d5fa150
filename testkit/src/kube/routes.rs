//! HTTP framing of the fake API server: authentication, URL resolution to a resource type,
//! namespace, name and subresource, the RBAC check, request options, and the dispatch to
//! discovery, the object verbs, watches, access reviews and pod exec.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};

use super::access::{self, AccessAttributes, Identity};
use super::api::{
    Cluster, DeleteOptions, FieldValidation, ListOptions, PatchType, Propagation, WriteOptions,
    Written,
};
use super::discovery;
use super::exec::{ExecTarget, serve_exec};
use super::protobuf;
use super::resources::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause, json_response};
use super::watch::{self, WatchRequest};

/// Shared by every request.
#[derive(Clone)]
pub struct RouterState {
    pub cluster: Arc<Cluster>,
    /// `127.0.0.1:PORT`, for `serverAddressByClientCIDRs` (set once the server is bound).
    pub address: Arc<std::sync::OnceLock<String>>,
}

pub fn router(state: RouterState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(State(state): State<RouterState>, request: Request) -> Response {
    handle(state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The decoded query string, repeated keys kept in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        Query(crate::query::pairs(raw.unwrap_or_default()))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

fn authenticate(cluster: &Cluster, headers: &HeaderMap) -> Result<Identity, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, token)| cluster.identity(token.trim()))
        .ok_or_else(ApiError::unauthorized)
}

fn ok(body: Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &body))
}

async fn handle(state: RouterState, request: Request) -> Result<Response, ApiError> {
    let cluster = state.cluster.clone();
    // Discovery, /version and access reviews are every authenticated user's (the
    // system:discovery and system:basic-user roles).
    let identity = authenticate(&cluster, request.headers())?;
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let catalog = &cluster.catalog;
    let not_found = ApiError::path_not_found;
    match segments.as_slice() {
        ["version"] => ok(discovery::version()),
        ["healthz" | "livez" | "readyz"] => Ok("ok".into_response()),
        ["api"] => ok(discovery::core_versions(
            state.address.get().map_or("127.0.0.1", String::as_str),
        )),
        ["apis"] => ok(discovery::group_list(catalog)),
        ["api", version] => {
            ok(discovery::resource_list(catalog, "", version).ok_or_else(not_found)?)
        }
        ["apis", group] => ok(discovery::group(catalog, group).ok_or_else(not_found)?),
        ["apis", group, version] => {
            ok(discovery::resource_list(catalog, group, version).ok_or_else(not_found)?)
        }
        ["openapi", "v3"] => ok(discovery::openapi_index(catalog)),
        ["openapi", "v3", "api", version] => {
            ok(discovery::openapi_document(catalog, "", version).ok_or_else(not_found)?)
        }
        ["openapi", "v3", "apis", group, version] => {
            ok(discovery::openapi_document(catalog, group, version).ok_or_else(not_found)?)
        }
        [
            "apis",
            discovery::AUTHORIZATION_GROUP,
            "v1",
            "selfsubjectaccessreviews",
        ] => {
            if request.method() != Method::POST {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let protobuf = is_protobuf(request.headers());
            let body = read_body(request).await?;
            let review: Value = if protobuf {
                decode_protobuf(&body, "SelfSubjectAccessReview")?
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding request body: {e}"))
                })?
            };
            let allowed = cluster.allows(&identity, &access::review_attributes(&review));
            Ok(json_response(
                StatusCode::CREATED,
                &access::review_answer(&review, allowed),
            ))
        }
        ["api", version, rest @ ..] => {
            let target = resolve(&cluster, "", version, rest)?;
            serve_resource(cluster.clone(), &identity, target, request).await
        }
        ["apis", group, version, rest @ ..] => {
            let target = resolve(&cluster, group, version, rest)?;
            serve_resource(cluster.clone(), &identity, target, request).await
        }
        _ => Err(not_found()),
    }
}

/// What a resource URL points at.
struct Target {
    resource: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn resolve(
    cluster: &Cluster,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let catalog = &cluster.catalog;
    let (namespace, plural, tail) = match rest {
        ["namespaces", namespace, plural, tail @ ..]
            if catalog
                .find(group, version, plural)
                .is_some_and(|t| t.namespaced) =>
        {
            (Some(namespace.to_string()), *plural, tail)
        }
        [plural, tail @ ..] => (None, *plural, tail),
        [] => return Err(ApiError::path_not_found()),
    };
    let resource = catalog
        .find(group, version, plural)
        .ok_or_else(ApiError::path_not_found)?
        .clone();
    if resource.namespaced && namespace.is_none() && !tail.is_empty() {
        return Err(ApiError::path_not_found());
    }
    if tail.len() > 2 {
        return Err(ApiError::path_not_found());
    }
    Ok(Target {
        resource,
        namespace,
        name: tail.first().map(|s| s.to_string()),
        subresource: tail.get(1).map(|s| s.to_string()),
    })
}

async fn read_body(request: Request) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(request.into_body(), 256 * 1024 * 1024)
        .await
        .map_err(|e| ApiError::bad_request(format!("unable to read the request body: {e}")))
}

fn options_error(kind: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("meta.k8s.io", kind, "", causes)
}

/// `dryRun` values: only `All` exists.
fn dry_run(values: &[String], options_kind: &str) -> Result<bool, ApiError> {
    if values.iter().all(|v| v == "All") {
        return Ok(!values.is_empty());
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    Err(options_error(
        options_kind,
        vec![Cause::new(
            "FieldValueNotSupported",
            format!(
                "Unsupported value: []string{{{}}}: supported values: \"All\"",
                quoted.join(", ")
            ),
            "dryRun",
        )],
    ))
}

fn write_options(
    query: &Query,
    headers: &HeaderMap,
    options_kind: &str,
) -> Result<WriteOptions, ApiError> {
    let dry_run = dry_run(&query.all("dryRun"), options_kind)?;
    let manager = match query.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(manager) if manager.len() > 128 => {
            return Err(options_error(
                options_kind,
                vec![Cause::new(
                    "FieldValueTooLong",
                    "Too long: may not be more than 128 bytes",
                    "fieldManager",
                )],
            ));
        }
        Some(manager) => manager.to_string(),
        None => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let field_validation = match query.get("fieldValidation").unwrap_or_default() {
        "" | "Warn" => FieldValidation::Warn,
        "Ignore" => FieldValidation::Ignore,
        "Strict" => FieldValidation::Strict,
        other => {
            // `ValidateFieldValidation`: the allowed values as a sorted set lists them.
            return Err(options_error(
                options_kind,
                vec![Cause::new(
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                        super::schema::go_quote(other)
                    ),
                    "fieldValidation",
                )],
            ));
        }
    };
    Ok(WriteOptions {
        dry_run,
        manager,
        force: query.flag("force"),
        field_validation,
        warnings: Default::default(),
    })
}

fn list_options(query: &Query) -> Result<ListOptions, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.0))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.0))?;
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for limit: {text:?}")))?,
        ),
        None => None,
    };
    Ok(ListOptions {
        labels,
        fields,
        limit,
        continue_token: query
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    })
}

/// Delete options from the query and the optional DeleteOptions body (kubectl sends both).
fn delete_options(query: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let mut dry_run_values = query.all("dryRun");
    if let Some(values) = body["dryRun"].as_array() {
        dry_run_values.extend(values.iter().filter_map(|v| v.as_str().map(str::to_string)));
    }
    let dry_run = dry_run(&dry_run_values, "DeleteOptions")?;
    let policy = query
        .get("propagationPolicy")
        .map(str::to_string)
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_string));
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(options_error(
                "DeleteOptions",
                vec![Cause::new(
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                    "propagationPolicy",
                )],
            ));
        }
    };
    if let Some(grace) = query.get("gracePeriodSeconds")
        && grace.parse::<i64>().is_err()
    {
        return Err(ApiError::bad_request(format!(
            "invalid value for gracePeriodSeconds: {grace:?}"
        )));
    }
    let precondition = |field: &str| {
        body["preconditions"][field]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Ok(DeleteOptions {
        dry_run,
        propagation,
        precondition_uid: precondition("uid"),
        precondition_resource_version: precondition("resourceVersion"),
    })
}

fn written((code, object): (StatusCode, Value)) -> Result<Response, ApiError> {
    Ok(json_response(code, &object))
}

/// A write's answer with the warnings it collected, one `Warning: 299 - "text"` header each
/// (`net.NewWarningHeader`: the text quoted, `"` and `\` escaped).
fn written_with(answer: Written, options: &WriteOptions) -> Result<Response, ApiError> {
    let mut response = written(answer)?;
    for text in options.warnings.take() {
        let quoted = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = http::HeaderValue::from_str(&format!("299 - \"{quoted}\"")) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    Ok(response)
}

async fn serve_resource(
    cluster: Arc<Cluster>,
    identity: &Identity,
    target: Target,
    request: Request,
) -> Result<Response, ApiError> {
    let query = Query::parse(request.uri().query());
    let method = request.method().clone();
    let subresource = target.subresource.as_deref().unwrap_or_default();
    let has_name = target.name.is_some();
    let watching = query.flag("watch");
    let verb = match (&method, has_name, subresource) {
        (&Method::GET | &Method::POST, true, "exec") => "create",
        (&Method::GET, true, "log") => "get",
        (_, _, "exec") => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        (&Method::GET, _, _) if watching => "watch",
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, _) => "list",
        (&Method::POST, false, _) => "create",
        (&Method::PUT, true, _) => "update",
        (&Method::PATCH, true, _) => "patch",
        (&Method::DELETE, true, "") => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    let resource = &target.resource;
    let namespace = target.namespace.as_deref();
    let name = target.name.as_deref().unwrap_or_default();
    let mut attributes = AccessAttributes::new(verb, &resource.group, &resource.plural, namespace)
        .with_subresource(subresource);
    if has_name {
        attributes = attributes.with_name(name);
    }
    if !cluster.allows(identity, &attributes) {
        return Err(ApiError::forbidden(
            attributes.forbidden_message(&identity.user_name(&cluster.user)),
            &resource.group,
            &resource.plural,
            name,
        ));
    }
    match subresource {
        "" => {}
        "exec" if resource.plural == "pods" => {
            return exec(
                &cluster,
                resource,
                namespace.unwrap_or_default(),
                name,
                &query,
                request,
            )
            .await;
        }
        "log" if resource.plural == "pods" => {
            let pod = cluster.get(resource, namespace, name)?;
            return pod_log(&cluster, &pod, &query);
        }
        "status" if resource.status_subresource => {
            return serve_status(&cluster, resource, namespace, name, verb, &query, request).await;
        }
        "scale" if resource.subresources.iter().any(|s| s == "scale") => {
            return serve_scale(&cluster, resource, namespace, name, verb, &query, request).await;
        }
        _ => return Err(ApiError::path_not_found()),
    }
    let headers = request.headers().clone();
    match verb {
        "get" => ok(cluster.get(resource, namespace, name)?),
        "list" => ok(cluster.list(resource, namespace, &list_options(&query)?)?),
        "watch" => {
            let mut list = list_options(&query)?;
            list.limit = None;
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map_or(watch::DEFAULT_TIMEOUT, Duration::from_secs);
            watch::watch(
                cluster.clone(),
                WatchRequest {
                    resource: resource.clone(),
                    namespace: target.namespace.clone(),
                    name: target
                        .name
                        .clone()
                        .or_else(|| list.fields.name().map(str::to_string)),
                    list,
                    resource_version: query.get("resourceVersion").map(str::to_string),
                    timeout,
                },
            )
        }
        "create" => {
            let options = write_options(&query, &headers, "CreateOptions")?;
            let body = parse_object(resource, &headers, &read_body(request).await?)?;
            written_with(
                cluster.create(resource, namespace, body, &options)?,
                &options,
            )
        }
        "update" => {
            let options = write_options(&query, &headers, "UpdateOptions")?;
            let body = parse_object(resource, &headers, &read_body(request).await?)?;
            written_with(
                cluster.update(resource, namespace, name, body, &options)?,
                &options,
            )
        }
        "patch" => {
            let options = write_options(&query, &headers, "PatchOptions")?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let patch_type = PatchType::from_content_type(content_type)
                .filter(|t| *t != PatchType::StrategicMerge || !resource.custom)
                .ok_or_else(|| unsupported_patch(resource))?;
            if patch_type == PatchType::Apply && query.get("fieldManager").is_none_or(str::is_empty)
            {
                return Err(options_error(
                    "PatchOptions",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "Required value: is required for apply patch",
                        "fieldManager",
                    )],
                ));
            }
            if patch_type != PatchType::Apply && query.get("force").is_some() {
                return Err(options_error(
                    "PatchOptions",
                    vec![Cause::new(
                        "FieldValueForbidden",
                        "Forbidden: may not be specified for non-apply patch",
                        "force",
                    )],
                ));
            }
            let body = read_body(request).await?;
            written_with(
                cluster.patch(resource, namespace, name, patch_type, &body, &options)?,
                &options,
            )
        }
        "delete" => {
            let body = read_body(request).await?;
            written(cluster.delete(resource, namespace, name, &delete_options(&query, &body)?)?)
        }
        "deletecollection" => {
            let list = list_options(&query)?;
            let body = read_body(request).await?;
            ok(cluster.delete_collection(
                resource,
                namespace,
                &list,
                &delete_options(&query, &body)?,
            )?)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn unsupported_patch(resource: &ResourceType) -> ApiError {
    let mut accepted = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if !resource.custom {
        accepted.push("application/strategic-merge-patch+json");
    }
    accepted.push("application/apply-patch+yaml");
    ApiError::unsupported_media_type(&accepted)
}

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|t| {
        t.as_bytes()
            .starts_with(b"application/vnd.kubernetes.protobuf")
    })
}

/// A protobuf body as the JSON object it stands for. Bytes that do not parse are the client's
/// fault (400, as the real decoder answers); a kind without a field table here is refused with
/// 415 naming it, as no real server would refuse it, so that the gap shows instead of a wrong
/// object.
fn decode_protobuf(body: &[u8], expected_kind: &str) -> Result<Value, ApiError> {
    protobuf::decode_object(body).map_err(|e| match e {
        protobuf::ProtobufError::Malformed(cause) => ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {expected_kind}): {cause}"
        )),
        protobuf::ProtobufError::NotDecoded { .. } => {
            let kinds: Vec<&str> = protobuf::decoded_kinds().collect();
            ApiError::unsupported_media_type_because(format!(
                "{e} (only {}): send it as JSON, as `kubectl create -f FILE` and `kubectl apply` do",
                kinds.join(", ")
            ))
        }
    })
}

fn parse_object(
    resource: &ResourceType,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if is_protobuf(headers) {
        let mut value = decode_protobuf(body, &resource.kind)?;
        super::numbers::as_stored(&mut value);
        return Ok(value);
    }
    let yaml = content_type.contains("yaml");
    let parsed: Result<Value, String> = if yaml {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    match parsed {
        Ok(mut value) if value.is_object() => {
            super::numbers::as_stored(&mut value);
            Ok(value)
        }
        Ok(_) => Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {})",
            resource.kind
        ))),
        Err(e) => Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
            resource.kind
        ))),
    }
}

/// The `status` subresource: reads the object, writes only its status.
async fn serve_status(
    cluster: &Cluster,
    resource: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    verb: &str,
    query: &Query,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let options_kind = if verb == "patch" {
        "PatchOptions"
    } else {
        "UpdateOptions"
    };
    let options = write_options(query, &headers, options_kind)?;
    match verb {
        "get" => ok(cluster.get(resource, namespace, name)?),
        "update" => {
            let body = parse_object(resource, &headers, &read_body(request).await?)?;
            written_with(
                cluster.replace_status(resource, namespace, name, body, &options)?,
                &options,
            )
        }
        "patch" => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let patch_type = PatchType::from_content_type(&content_type)
                .filter(|t| {
                    matches!(
                        t,
                        PatchType::Merge | PatchType::StrategicMerge | PatchType::Json
                    )
                })
                .filter(|t| *t != PatchType::StrategicMerge || !resource.custom)
                .ok_or_else(|| unsupported_patch(resource))?;
            let body = read_body(request).await?;
            let answer = cluster.update_status(
                resource,
                namespace,
                name,
                |old| super::api::patched(old, patch_type, &body),
                &options,
            )?;
            written_with(answer, &options)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// The `scale` subresource of a workload: reads and writes `autoscaling/v1` `Scale`, whose
/// `spec.replicas` is the workload's (as `kubectl scale` and autoscalers use it).
async fn serve_scale(
    cluster: &Cluster,
    resource: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    verb: &str,
    query: &Query,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let options_kind = if verb == "patch" {
        "PatchOptions"
    } else {
        "UpdateOptions"
    };
    match verb {
        "get" => ok(cluster.get_scale(resource, namespace, name)?),
        "update" => {
            let options = write_options(query, &headers, options_kind)?;
            let body = read_body(request).await?;
            let scale: Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the object provided is unrecognized (must be of type Scale): {e}"
                ))
            })?;
            written(cluster.update_scale(resource, namespace, name, |_| Ok(scale), &options)?)
        }
        "patch" => {
            let options = write_options(query, &headers, options_kind)?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            // Server-side apply of a Scale is not simulated: answered like an unknown format.
            let patch_type = PatchType::from_content_type(&content_type)
                .filter(|t| *t != PatchType::Apply)
                .ok_or_else(|| {
                    ApiError::unsupported_media_type(&[
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                    ])
                })?;
            let body = read_body(request).await?;
            written(cluster.update_scale(
                resource,
                namespace,
                name,
                |old| super::api::patched(old, patch_type, &body),
                &options,
            )?)
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// `pods/exec`: checks the pod and container like the API server and the kubelet, then hands the
/// WebSocket to the exec implementation.
async fn exec(
    cluster: &Cluster,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    query: &Query,
    request: Request,
) -> Result<Response, ApiError> {
    let pod = cluster.get(resource, Some(namespace), name)?;
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(container) if containers.iter().any(|c| c == container) => container.to_string(),
        Some(container) => {
            return Err(ApiError::bad_request(format!(
                "container {container} is not valid for pod {name}"
            )));
        }
        None => match containers.as_slice() {
            [only] => only.clone(),
            [] => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}"
                )));
            }
            many => {
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                )));
            }
        },
    };
    if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && pod["status"]["phase"] == "Pending"
    {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let running = pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"]
            .as_array()
            .is_none_or(|statuses| {
                statuses
                    .iter()
                    .filter(|s| s["name"] == container.as_str())
                    .all(|s| !s["state"]["running"].is_null() || s["state"].is_null())
            });
    if !running {
        return Err(ApiError::bad_request(format!(
            "container not found (\"{container}\")"
        )));
    }
    let raw_query = request.uri().query().map(str::to_string);
    let (mut parts, _body) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::bad_request("Upgrade request required"))?;
    let workdir = cluster.pods_root.join(namespace).join(name);
    std::fs::create_dir_all(&workdir)
        .map_err(|e| ApiError::unclassified(format!("cannot prepare the pod's directory: {e}")))?;
    let env = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == container.as_str())
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .filter_map(|var| {
            Some((
                var["name"].as_str()?.to_string(),
                var["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let target = ExecTarget {
        namespace: namespace.to_string(),
        pod: name.to_string(),
        container,
        workdir,
        env,
        before_exec: cluster.before_exec.lock().unwrap().clone(),
    };
    Ok(serve_exec(upgrade, raw_query, target).await)
}

/// Renders injected faults as the API server's `Status`.
pub fn error_renderer() -> crate::serve::ErrorRenderer {
    Arc::new(|code: StatusCode, message: &str| -> http::Response<Body> {
        ApiError::for_code(code, message).into_response()
    })
}

/// `pods/log`: what the pod's container wrote (stdout and stderr, as the kubelet keeps it), the
/// last `tailLines` lines when asked; 400 while the container has not started, with its waiting
/// reason, as the kubelet answers.
fn pod_log(cluster: &Cluster, pod: &Value, query: &Query) -> Result<Response, ApiError> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let path = super::jobs::log_path(&cluster.pods_root, namespace, name);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        let container = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or_default();
        // The container's waiting reason, as the kubelet names it (`CreateContainerConfigError`).
        let reason = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("ContainerCreating");
        ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        ))
    })?;
    let text = match query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
            if !tail.is_empty() {
                tail.push('\n');
            }
            tail
        }
        None => text,
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response())
}
