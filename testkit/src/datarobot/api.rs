//! The HTTP side of the fake DataRobot API: authentication, routing and the handlers.
//!
//! Routing is done by hand (one fallback handler) rather than with axum routes, because the
//! answers a client can observe at the edges — the redirect for a missing trailing slash, 401
//! before 404, JSON bodies on 404/405 — are part of what the fake must get right.
//!
//! Behaviour checked against the official Python client 3.20.0 (its source is the contract):
//! - `Authorization: <Token|Bearer> <token>` (the client sends `Token` by default, `Bearer`
//!   with `token_type="Bearer"`); both are accepted here, the scheme case-insensitively.
//! - `GET version/` must answer JSON with `versionString` "MAJOR.MINOR..."; a 401 there makes
//!   the client say the token or endpoint is wrong.
//! - Lists: `{"count", "data", "next", "previous", "totalCount"}`; the client follows `next`
//!   verbatim (an absolute URL) until it is `null`.
//! - Status jobs: polled with redirects off; 200 + `status` (INITIALIZED/RUNNING: wait,
//!   ERROR/ABORTED: fail, COMPLETED: done), 303 + `Location` of the finished resource: done.
//!   Any other code is an error to the client.
//! - Every error answer needs a `Content-Type` header (the client indexes it unconditionally).
//!
//! Chosen without a live server to compare with (documented so that nobody mistakes them for
//! verified facts): 401 body `{"message": "Invalid Token"}`; 403 for a status change without the
//! MLOps admin role; 422 `{"message": "Invalid field data", "errors": {...}}` for bad query or
//! body fields; 422 for a status change to the status the deployment already has; 409 while a
//! status change of the same deployment is still running; 308 (method kept) to the trailing-slash
//! form of a known route; `limit` above the cap is capped, `limit < 1` or `offset < 0` is 422.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use serde_json::{Value, json};

use super::render;
use super::{
    Caller, DeploymentSeed, DeploymentStatus, Job, JobState, Shared, State, StatusChange,
    StatusOutcome,
};

/// The API version this fake claims: the version the Python client 3.20 expects, so the client
/// prints no "client is ahead of server" warning.
const API_MAJOR: u64 = 2;
const API_MINOR: u64 = 49;
const RELEASED_VERSION: &str = "11.1.1";

/// The page size when a list request gives no `limit` (the real default).
const DEFAULT_PAGE_SIZE: usize = 20;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// A DataRobot-style error answer: JSON `{"message": ...}`.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "message": message }))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut answer = Response::new(Body::from(body.to_string()));
    *answer.status_mut() = status;
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    answer
}

/// A 422 in the shape of the API's field validation errors.
fn invalid_fields(errors: Value) -> Response<Body> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ "message": "Invalid field data", "errors": errors }),
    )
}

fn not_found() -> Response<Body> {
    error_response(StatusCode::NOT_FOUND, "Not Found")
}

fn method_not_allowed(allowed: &'static str) -> Response<Body> {
    let mut answer = error_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    answer
}

fn with_location(mut answer: Response<Body>, location: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(location) {
        answer.headers_mut().insert(header::LOCATION, value);
    }
    answer
}

/// The routes of the API, by path segments after `/api/v2/` (without the trailing empty one).
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Version,
    Deployments,
    Deployment(&'a str),
    DeploymentStatus(&'a str),
    StatusJob(&'a str),
}

fn route<'a>(segments: &[&'a str]) -> Option<Route<'a>> {
    match segments {
        ["version"] => Some(Route::Version),
        ["deployments"] => Some(Route::Deployments),
        ["deployments", id] if !id.is_empty() => Some(Route::Deployment(id)),
        ["deployments", id, "status"] if !id.is_empty() => Some(Route::DeploymentStatus(id)),
        ["status", id] if !id.is_empty() => Some(Route::StatusJob(id)),
        _ => None,
    }
}

async fn dispatch(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let path = uri.path();
    let Some(rest) = path
        .strip_prefix("/api/v2/")
        .or_else(|| (path == "/api/v2").then_some(""))
    else {
        // The app URL itself is not the API: a client pointed at `https://host` instead of
        // `https://host/api/v2` gets here with `version/` and must fail loudly.
        return not_found();
    };
    let Some(caller) = authenticate(&shared, &headers) else {
        return error_response(StatusCode::UNAUTHORIZED, "Invalid Token");
    };
    let (segments, slash) = match rest.strip_suffix('/') {
        Some(inner) => (inner.split('/').collect::<Vec<_>>(), true),
        None => (rest.split('/').collect::<Vec<_>>(), false),
    };
    let Some(found) = route(&segments) else {
        return not_found();
    };
    if !slash {
        // Flask/werkzeug-style strict slashes: a known route without its slash is redirected,
        // with 308 so that a PATCH stays a PATCH.
        let mut location = format!("{}{}/", shared.base_url(), path);
        if let Some(query) = uri.query() {
            location.push('?');
            location.push_str(query);
        }
        return with_location(
            error_response(StatusCode::PERMANENT_REDIRECT, "Permanent Redirect"),
            &location,
        );
    }
    match (found, &method) {
        (Route::Version, &Method::GET) => version(),
        (Route::Version, _) => method_not_allowed("GET"),
        (Route::Deployments, &Method::GET) => list_deployments(&shared, caller, uri.query()),
        (Route::Deployments, _) => method_not_allowed("GET"),
        (Route::Deployment(id), &Method::GET) => get_deployment(&shared, caller, id),
        (Route::Deployment(_), _) => method_not_allowed("GET"),
        (Route::DeploymentStatus(id), &Method::PATCH) => {
            change_status(&shared, caller, id, &headers, &body)
        }
        (Route::DeploymentStatus(_), _) => method_not_allowed("PATCH"),
        (Route::StatusJob(id), &Method::GET) => get_job(&shared, id),
        (Route::StatusJob(_), _) => method_not_allowed("GET"),
    }
}

/// Who the request's token belongs to; `None` answers 401.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let token = token.trim();
    if token == shared.admin_token {
        Some(Caller::Admin)
    } else if token == shared.user_token {
        Some(Caller::User)
    } else {
        None
    }
}

fn version() -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({
            "major": API_MAJOR,
            "minor": API_MINOR,
            "versionString": format!("{API_MAJOR}.{API_MINOR}.0"),
            "releasedVersion": RELEASED_VERSION,
        }),
    )
}

/// The deployments in list order: by label (the API's default `orderBy`), then id.
pub(crate) fn listing_order(state: &State) -> Vec<DeploymentSeed> {
    let mut all: Vec<DeploymentSeed> = state.deployments.values().cloned().collect();
    all.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.id.cmp(&b.id)));
    all
}

/// Parses a non-negative integer query field the way the API's validation reports it.
fn int_field(query: &HashMap<String, String>, name: &str, min: i64) -> Result<Option<i64>, Value> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    let value: i64 = text
        .trim()
        .parse()
        .map_err(|_| json!({ name: "value can't be converted to int" }))?;
    if value < min {
        return Err(json!({ name: format!("value is less than {min}") }));
    }
    Ok(Some(value))
}

const ORDER_BY_FIELDS: &[&str] = &[
    "label",
    "serviceHealth",
    "modelHealth",
    "accuracyHealth",
    "recentPredictions",
    "lastPredictionTimestamp",
];

fn list_deployments(shared: &Shared, caller: Caller, raw_query: Option<&str>) -> Response<Body> {
    let Ok(pairs) = crate::query::strict_pairs(raw_query.unwrap_or_default()) else {
        return invalid_fields(json!({ "query": "malformed percent-encoding" }));
    };
    let query: HashMap<String, String> = pairs.iter().cloned().collect();
    let offset = match int_field(&query, "offset", 0) {
        Ok(v) => v.unwrap_or(0) as usize,
        Err(errors) => return invalid_fields(errors),
    };
    let limit = match int_field(&query, "limit", 1) {
        Ok(v) => v.map_or(DEFAULT_PAGE_SIZE, |v| v as usize),
        Err(errors) => return invalid_fields(errors),
    }
    .min(shared.page_size_limit);
    let descending = match query.get("orderBy").map(String::as_str) {
        None => false,
        Some(order) => {
            let (descending, field) = match order.strip_prefix('-') {
                Some(field) => (true, field),
                None => (false, order),
            };
            if !ORDER_BY_FIELDS.contains(&field) {
                return invalid_fields(json!({ "orderBy": "value doesn't match any variant" }));
            }
            // Health and prediction fields are the same for every fake deployment: they sort
            // like `label`.
            descending
        }
    };
    let search = query.get("search").map(|s| s.to_lowercase());

    let state = shared.state.lock().unwrap();
    let mut matching: Vec<DeploymentSeed> = listing_order(&state)
        .into_iter()
        .filter(|d| {
            search.as_deref().is_none_or(|needle| {
                d.label.to_lowercase().contains(needle)
                    || d.description
                        .as_deref()
                        .is_some_and(|text| text.to_lowercase().contains(needle))
            })
        })
        .collect();
    if descending {
        matching.reverse();
    }
    let total = matching.len();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|d| render::deployment(d, caller, &shared.base_url()))
        .collect();
    drop(state);

    let page_url = |offset: usize| {
        let mut params: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| k != "offset" && k != "limit")
            .cloned()
            .collect();
        params.push(("offset".to_string(), offset.to_string()));
        params.push(("limit".to_string(), limit.to_string()));
        format!(
            "{}/api/v2/deployments/?{}",
            shared.base_url(),
            encode_query(&params)
        )
    };
    let next = (offset + page.len() < total).then(|| page_url(offset + limit));
    let previous = (offset > 0).then(|| page_url(offset.saturating_sub(limit)));
    json_response(
        StatusCode::OK,
        &json!({
            "count": page.len(),
            "data": page,
            "next": next,
            "previous": previous,
            "totalCount": total,
        }),
    )
}

fn get_deployment(shared: &Shared, caller: Caller, id: &str) -> Response<Body> {
    let state = shared.state.lock().unwrap();
    match state.deployments.get(id) {
        Some(d) => json_response(
            StatusCode::OK,
            &render::deployment(d, caller, &shared.base_url()),
        ),
        None => not_found(),
    }
}

fn change_status(
    shared: &Arc<Shared>,
    caller: Caller,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Body> {
    if !shared.state.lock().unwrap().deployments.contains_key(id) {
        return not_found();
    }
    if caller != Caller::Admin {
        return error_response(
            StatusCode::FORBIDDEN,
            "You do not have permission to change the status of this deployment: \
             the MLOps admin role or the deployment's OWNER role is required.",
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let parsed: Option<Value> = if is_json {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    let Some(Value::Object(fields)) = parsed else {
        return invalid_fields(json!({ "status": "is required" }));
    };
    let target = match fields.get("status") {
        None => return invalid_fields(json!({ "status": "is required" })),
        Some(Value::String(s)) => match DeploymentStatus::parse(s) {
            Some(status @ (DeploymentStatus::Active | DeploymentStatus::Inactive)) => status,
            _ => return invalid_fields(json!({ "status": "value doesn't match any variant" })),
        },
        Some(_) => return invalid_fields(json!({ "status": "value is not a string" })),
    };

    let now = Utc::now();
    let mut state = shared.state.lock().unwrap();
    let Some(current) = state.deployments.get(id).map(|d| d.status) else {
        return not_found();
    };
    let pending = state
        .jobs
        .values()
        .any(|job| job.deployment_id == id && job.state == JobState::Running);
    if pending {
        return error_response(
            StatusCode::CONFLICT,
            "A status change of this deployment is already in progress.",
        );
    }
    if current == target {
        return error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Deployment is already {target}."),
        );
    }
    let job_id = uuid::Uuid::new_v4().to_string();
    let will_fail = state.fail_next.remove(id);
    let history_index = state.history.len();
    state.history.push(StatusChange {
        deployment_id: id.to_string(),
        from: current,
        to: target,
        requested_at: now,
        completed_at: None,
        job_id: job_id.clone(),
        outcome: StatusOutcome::Pending,
    });
    state.jobs.insert(
        job_id.clone(),
        Job {
            id: job_id.clone(),
            deployment_id: id.to_string(),
            created: now,
            state: JobState::Running,
            history_index,
        },
    );
    state.in_flight += 1;
    state.max_in_flight = state.max_in_flight.max(state.in_flight);
    drop(state);

    let worker = shared.clone();
    let finished_job = job_id.clone();
    let duration = shared.status_change_duration;
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        finish_job(&worker, &finished_job, target, will_fail);
    });

    let location = format!("{}/api/v2/status/{job_id}/", shared.base_url());
    with_location(json_response(StatusCode::ACCEPTED, &json!({})), &location)
}

/// Ends a status job: flips the deployment's status, or leaves it and records the failure.
fn finish_job(shared: &Shared, job_id: &str, target: DeploymentStatus, fail: bool) {
    let mut guard = shared.state.lock().unwrap();
    let state = &mut *guard;
    let Some(job) = state.jobs.get_mut(job_id) else {
        return;
    };
    let outcome = if fail {
        let message = format!(
            "Failed to change the status of deployment {} to {target}.",
            job.deployment_id
        );
        job.state = JobState::Failed(message.clone());
        StatusOutcome::Failed(message)
    } else {
        job.state = JobState::Completed;
        if let Some(deployment) = state.deployments.get_mut(&job.deployment_id) {
            deployment.status = target;
        }
        StatusOutcome::Completed
    };
    if let Some(entry) = state.history.get_mut(job.history_index) {
        entry.completed_at = Some(Utc::now());
        entry.outcome = outcome;
    }
    state.in_flight = state.in_flight.saturating_sub(1);
}

/// How long a job reports INITIALIZED before RUNNING: the first quarter of its run, so a
/// client polling right after the PATCH sees both states.
fn initialized_for(total: Duration) -> Duration {
    total / 4
}

fn get_job(shared: &Shared, id: &str) -> Response<Body> {
    let state = shared.state.lock().unwrap();
    let Some(job) = state.jobs.get(id) else {
        return not_found();
    };
    let body = |status: &str, message: &str| {
        json!({
            "statusId": job.id,
            "status": status,
            "message": message,
            "code": 0,
            "created": render::timestamp(job.created),
            "description": "",
            "statusType": "",
        })
    };
    match &job.state {
        JobState::Running => {
            let elapsed = (Utc::now() - job.created).to_std().unwrap_or_default();
            let status = if elapsed < initialized_for(shared.status_change_duration) {
                "INITIALIZED"
            } else {
                "RUNNING"
            };
            json_response(StatusCode::OK, &body(status, ""))
        }
        JobState::Completed => {
            let location = format!(
                "{}/api/v2/deployments/{}/",
                shared.base_url(),
                job.deployment_id
            );
            with_location(
                json_response(StatusCode::SEE_OTHER, &body("COMPLETED", "")),
                &location,
            )
        }
        JobState::Failed(message) => json_response(StatusCode::OK, &body("ERROR", message)),
    }
}

fn encode_query(params: &[(String, String)]) -> String {
    crate::query::encode(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn routes_match_only_known_shapes() {
        assert_eq!(route(&["version"]), Some(Route::Version));
        assert_eq!(
            route(&["deployments", "abc"]),
            Some(Route::Deployment("abc"))
        );
        assert_eq!(
            route(&["deployments", "abc", "status"]),
            Some(Route::DeploymentStatus("abc"))
        );
        assert_eq!(route(&["status", "j1"]), Some(Route::StatusJob("j1")));
        assert_eq!(route(&["deployments", ""]), None);
        assert_eq!(route(&["projects"]), None);
    }

    #[test]
    fn query_text_round_trips() {
        let pairs = crate::query::strict_pairs("search=a+b%2Fc&limit=5&flag").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("search".to_string(), "a b/c".to_string()),
                ("limit".to_string(), "5".to_string()),
                ("flag".to_string(), String::new()),
            ]
        );
        assert_eq!(encode_query(&pairs), "search=a+b%2Fc&limit=5&flag=");
        assert!(crate::query::strict_pairs("a=%zz").is_err());
    }

    #[test]
    fn integer_fields_are_validated() {
        let q: HashMap<String, String> = [("limit".to_string(), "x".to_string())].into();
        assert!(int_field(&q, "limit", 1).is_err());
        let q: HashMap<String, String> = [("limit".to_string(), "0".to_string())].into();
        assert!(int_field(&q, "limit", 1).is_err());
        let q: HashMap<String, String> = [("offset".to_string(), "7".to_string())].into();
        assert_eq!(int_field(&q, "offset", 0).unwrap(), Some(7));
        assert_eq!(int_field(&q, "limit", 1).unwrap(), None);
    }
}
