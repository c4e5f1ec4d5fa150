//! Watches: a chunked stream of JSON event lines (`{"type":"ADDED","object":...}`) for a list or
//! a single object, replaying history after a given resourceVersion (or synthetic ADDED events
//! for the current state), following live changes until `timeoutSeconds`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::api::{Cluster, ListOptions};
use super::resources::ResourceType;
use super::status::ApiError;
use super::store::StoreEvent;

/// What a watch is for.
pub struct WatchRequest {
    pub resource: ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub list: ListOptions,
    /// `None` or `"0"`: start with the current state; else replay what came after it.
    pub resource_version: Option<String>,
    pub timeout: Duration,
}

impl WatchRequest {
    fn wants(&self, plural: &str, object: &Value) -> bool {
        let metadata = &object["metadata"];
        plural == self.resource.plural
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| metadata["namespace"] == ns)
            && self.name.as_deref().is_none_or(|n| metadata["name"] == n)
            && self.list.labels.matches(object)
            && self.list.fields.matches(object)
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The real default is 30 to 60 minutes; a fake does not need that long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

pub fn watch(cluster: Arc<Cluster>, request: WatchRequest) -> Result<Response, ApiError> {
    let start: Option<u64> = match request.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(text) => Some(
            text.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text}")))?,
        ),
    };
    let mut pending: VecDeque<Bytes> = VecDeque::new();
    let receiver: Option<broadcast::Receiver<StoreEvent>> = {
        let store = cluster.lock();
        match start {
            None => {
                for (_, object) in store.objects(&request.resource.plural) {
                    if request.wants(&request.resource.plural, object) {
                        pending.push_back(line("ADDED", object));
                    }
                }
                Some(store.subscribe())
            }
            Some(rv) => match store.watch_from(&request.resource.plural, rv) {
                Some((past, receiver)) => {
                    for event in past.iter().filter(|e| request.wants(&e.plural, &e.object)) {
                        pending.push_back(line(event.kind.as_str(), &event.object));
                    }
                    Some(receiver)
                }
                None => {
                    let expired = ApiError::expired(
                        format!(
                            "too old resource version: {rv} ({})",
                            store.resource_version()
                        ),
                        None,
                    );
                    pending.push_back(line("ERROR", &expired.to_status()));
                    None
                }
            },
        }
    };
    let last_replayed = start.unwrap_or(0);
    let deadline = Instant::now() + request.timeout;
    let state = (pending, receiver, request, last_replayed);
    let stream = futures::stream::unfold(
        state,
        move |(mut pending, mut receiver, request, last_replayed)| async move {
            loop {
                if let Some(chunk) = pending.pop_front() {
                    return Some((
                        Ok::<_, Infallible>(chunk),
                        (pending, receiver, request, last_replayed),
                    ));
                }
                let live = receiver.as_mut()?;
                let event = match tokio::time::timeout_at(deadline, live.recv()).await {
                    Ok(Ok(event)) => event,
                    // Timed out, lagged behind or server gone: the client re-watches.
                    _ => return None,
                };
                if event.resource_version > last_replayed
                    && request.wants(&event.plural, &event.object)
                {
                    pending.push_back(line(event.kind.as_str(), &event.object));
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
