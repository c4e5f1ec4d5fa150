//! The API server's error answers: a typed error per failure the fake can report, rendered as the
//! `Status` body with the code, reason, message and details the real kube-apiserver uses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Map, Value, json};

use super::resources::ResourceType;

/// One entry of `details.causes`: what is wrong with which field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldManagerConflict`, ...
    pub kind: String,
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn new(kind: &str, message: impl Into<String>, field: impl Into<String>) -> Self {
        Cause {
            kind: kind.to_string(),
            message: message.into(),
            field: field.into(),
        }
    }
}

/// A failed API call, as a `Status` of kind Failure.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: StatusCode,
    /// `NotFound`, `AlreadyExists`, ...; empty for errors the real server does not classify
    /// (they answer 500 with no reason).
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in every `Result` of the server and should stay small.
    pub details: Option<Box<Map<String, Value>>>,
    /// `metadata.continue` of the Status: set on 410 Expired for a stale continue token.
    pub continue_token: Option<String>,
}

fn details(name: &str, group: &str, kind: &str) -> Map<String, Value> {
    let mut map = Map::new();
    if !name.is_empty() {
        map.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        map.insert("group".into(), json!(group));
    }
    if !kind.is_empty() {
        map.insert("kind".into(), json!(kind));
    }
    map
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// `lrs.lrs.datarobot.com "x" not found`; the real server puts the plural in `details.kind`.
    pub fn not_found(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", resource.qualified_resource()),
        )
        .with_details(details(name, &resource.group, &resource.plural))
    }

    /// What the NamespaceLifecycle admission answers for a write into a missing namespace.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        )
        .with_details(details(namespace, "", "namespaces"))
    }

    pub fn already_exists(resource: &ResourceType, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!(
                "{} \"{name}\" already exists",
                resource.qualified_resource()
            ),
        )
        .with_details(details(name, &resource.group, &resource.plural))
    }

    /// The optimistic-concurrency failure of an update with a stale `resourceVersion`.
    pub fn conflict(resource: &ResourceType, name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified_resource()
            ),
        )
        .with_details(details(name, &resource.group, &resource.plural))
    }

    pub fn stale_resource_version(resource: &ResourceType, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// Server-side apply conflicts: reason Conflict, no name in the details, one cause per field.
    pub fn apply_conflict(message: String, causes: Vec<Cause>) -> Self {
        let mut map = Map::new();
        map.insert("causes".into(), causes_json(&causes));
        Self::new(StatusCode::CONFLICT, "Conflict", message).with_details(map)
    }

    /// 422 Invalid: `<kind>.<group> "<name>" is invalid: <field errors>`. `kind` is what the real
    /// server puts there: the Kind for object validation, the plural for a missing update
    /// resourceVersion, `PatchOptions` and friends (group `meta.k8s.io`) for bad options.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let field_errors: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match field_errors.as_slice() {
            [] => String::new(),
            [one] => format!(": {one}"),
            many => format!(": [{}]", many.join(", ")),
        };
        let mut map = details(name, group, kind);
        map.insert("causes".into(), causes_json(&causes));
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid{summary}"),
        )
        .with_details(map)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: String, group: &str, plural: &str, name: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
            .with_details(details(name, group, plural))
    }

    /// What the NamespaceLifecycle admission answers for a create in a namespace that is being
    /// deleted: 403 Forbidden, like a permission problem, told apart only by the
    /// `NamespaceTerminating` cause (`admission.NewForbidden` plus the appended cause).
    pub fn namespace_terminating(resource: &ResourceType, name: &str, namespace: &str) -> Self {
        let mut error = Self::forbidden(
            format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                resource.qualified_resource()
            ),
            &resource.group,
            &resource.plural,
            name,
        );
        if let Some(details) = error.details.as_mut() {
            details.insert(
                "causes".into(),
                causes_json(&[Cause::new(
                    "NamespaceTerminating",
                    format!("namespace {namespace} is being terminated"),
                    "metadata.namespace",
                )]),
            );
        }
        error
    }

    /// An error the real server does not turn into an API status (for example the storage
    /// layer's "resourceVersion should not be set on objects to be created"): 500, no reason.
    pub fn unclassified(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "", message)
    }

    pub fn expired(message: impl Into<String>, continue_token: Option<String>) -> Self {
        let mut error = Self::new(StatusCode::GONE, "Expired", message);
        error.continue_token = continue_token;
        error
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// A 415 whose message says why, for a body format the fake reads only in part.
    pub fn unsupported_media_type_because(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// The answer for a path the server does not serve at all.
    pub fn path_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(Map::new())
    }

    /// A failure status for any code (injected faults), with the reason the real server would
    /// give that code.
    pub fn for_code(code: StatusCode, message: &str) -> Self {
        let reason = match code.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "",
        };
        Self::new(code, reason, message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut metadata = Map::new();
        if let Some(token) = &self.continue_token {
            metadata.insert("continue".into(), json!(token));
        }
        let mut status = Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        status.insert("metadata".into(), Value::Object(metadata));
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            status.insert("reason".into(), json!(self.reason));
        }
        if let Some(details) = &self.details {
            status.insert("details".into(), Value::Object((**details).clone()));
        }
        status.insert("code".into(), json!(self.code.as_u16()));
        Value::Object(status)
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(
        causes
            .iter()
            .map(|c| json!({"reason": c.kind, "message": c.message, "field": c.field}))
            .collect(),
    )
}

/// A JSON answer with the content type of the real server.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.code, &self.to_status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_one_field_error_inline_and_several_in_brackets() {
        let one = ApiError::invalid(
            "lrs.datarobot.com",
            "lrs",
            "x",
            vec![Cause::new(
                "FieldValueInvalid",
                "Invalid value: 0x0: must be specified for an update",
                "metadata.resourceVersion",
            )],
        );
        assert_eq!(
            one.message,
            "lrs.lrs.datarobot.com \"x\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        );
        let status = one.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["details"]["kind"], "lrs");
        assert_eq!(
            status["details"]["causes"][0]["field"],
            "metadata.resourceVersion"
        );
        let two = ApiError::invalid(
            "",
            "Pod",
            "p",
            vec![
                Cause::new("FieldValueRequired", "Required value", "a"),
                Cause::new("FieldValueRequired", "Required value", "b"),
            ],
        );
        assert_eq!(
            two.message,
            "Pod \"p\" is invalid: [a: Required value, b: Required value]"
        );
    }

    #[test]
    fn unclassified_errors_have_no_reason() {
        let status = ApiError::unclassified("boom").to_status();
        assert_eq!(status["code"], 500);
        assert!(status.get("reason").is_none());
        assert_eq!(status["status"], "Failure");
    }
}
