//! Sending requests to the API server under the one retry policy (`mlbackup_helper::retry`,
//! shared with the DataRobot client): 429 and 5xx answers and broken connections are retried
//! with capped exponential backoff and jitter, honouring `Retry-After`; everything else is
//! explained once, in the user's terms. An answer is read up to [`MAX_ANSWER_BYTES`], never
//! further: a misbehaving server cannot fill the memory.

use std::time::Instant;

use http::{HeaderMap, Request, StatusCode};
use kube::client::Body;
use serde::de::DeserializeOwned;

use super::{Cluster, ClusterError, RequestScope};

pub use mlbackup_helper::retry::RetryPolicy;
use mlbackup_helper::retry::retry_after;

/// The most bytes of one answer that are read. A page of the default 500 LRS objects is a few
/// MiB; this leaves room for large objects, and `--page-size` lists fewer at once.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The parts of a request, kept so it can be sent again.
struct Replayable {
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Replayable {
    fn new(request: Request<Vec<u8>>) -> Self {
        let (parts, body) = request.into_parts();
        Replayable {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        }
    }

    fn build(&self) -> Request<Body> {
        let mut request = Request::new(Body::from(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// A successful answer: its status (200 and 201 tell an update from a creation) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self, cluster: &Cluster) -> Result<T, ClusterError> {
        serde_json::from_slice(&self.body).map_err(|source| decode_error(cluster, source))
    }
}

/// An answer of the API server that is not what it should be.
pub fn decode_error(cluster: &Cluster, source: serde_json::Error) -> ClusterError {
    ClusterError::Decode {
        url: cluster.server_url.clone(),
        source: kube::Error::SerdeError(source),
    }
}

/// Whether sending the request twice does no more than sending it once, so a server error or
/// a broken connection (the request may or may not have been processed) can be retried: reads,
/// PUT, DELETE (a second one finds the object gone: the caller treats 404 as done) and
/// server-side apply (the same configuration applied twice is one change). A POST is not.
fn replay_safe(method: &http::Method, headers: &HeaderMap) -> bool {
    use http::Method;
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE => true,
        Method::PATCH => headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(APPLY_PATCH_CONTENT_TYPE)),
        _ => false,
    }
}

/// The content type of a server-side apply.
pub const APPLY_PATCH_CONTENT_TYPE: &str = "application/apply-patch+yaml";

/// Sends a request and decodes the JSON answer, retrying what is worth retrying.
pub async fn send_json<T: DeserializeOwned>(
    cluster: &Cluster,
    request: Request<Vec<u8>>,
    scope: &RequestScope<'_>,
) -> Result<T, ClusterError> {
    send(cluster, request, scope).await?.json(cluster)
}

/// Sends a request under the retry policy: 429 (the server did not process it) is always
/// retried; server errors and broken connections only when the request is safe to replay
/// (see [`replay_safe`]). An error answer is explained in the user's terms.
pub async fn send(
    cluster: &Cluster,
    request: Request<Vec<u8>>,
    scope: &RequestScope<'_>,
) -> Result<Answer, ClusterError> {
    let policy = cluster.retry;
    let request = Replayable::new(request);
    let may_replay = replay_safe(&request.method, &request.headers);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let outcome = cluster.client.send(request.build()).await;
        let (status, headers, body) = match outcome {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let limited = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER_BYTES);
                match http_body_util::BodyExt::collect(limited)
                    .await
                    .map(|collected| collected.to_bytes())
                {
                    Ok(body) => (status, headers, body),
                    Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                        return Err(ClusterError::TooLarge {
                            request: format!("{} {}", request.method, request.uri),
                        });
                    }
                    Err(err) if may_replay && attempt < policy.max_attempts => {
                        log::info!(
                            "{} {}: answer broken off ({err}), retrying",
                            request.method,
                            request.uri
                        );
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    Err(err) => {
                        let err = match err.downcast::<kube::Error>() {
                            Ok(err) => *err,
                            Err(other) => kube::Error::Service(other),
                        };
                        return Err(cluster.explain(err, Some(scope)));
                    }
                }
            }
            Err(err) if may_replay && is_transient(&err) && attempt < policy.max_attempts => {
                log::info!("{} {}: {err}, retrying", request.method, request.uri);
                tokio::time::sleep(policy.delay(attempt, None)).await;
                attempt += 1;
                continue;
            }
            Err(err) => return Err(cluster.explain(err, Some(scope))),
        };
        log::debug!(
            "{} {} {} in {} ms",
            request.method,
            request.uri,
            status.as_u16(),
            started.elapsed().as_millis()
        );
        if status.is_success() {
            return Ok(Answer {
                status,
                // Takes over the buffer when it can rather than copying a page of a list.
                body: Vec::from(body),
            });
        }
        let worth_retrying = status == StatusCode::TOO_MANY_REQUESTS
            || (may_replay && retryable(status) && !refused_apply(status, &body));
        if worth_retrying && attempt < policy.max_attempts {
            let wait = policy.delay(attempt, retry_after(&headers));
            log::info!(
                "{} {}: {} from the API server, retrying in {} ms",
                request.method,
                request.uri,
                status,
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
            continue;
        }
        return Err(cluster.explain_status(status, &body, Some(scope)));
    }
}

/// The 500 kube-apiserver answers a server-side apply whose configuration does not fit the
/// resource's schema (a field it does not declare, a value of another kind): the same request
/// fails the same way every time (kubernetes/kubernetes#122480), so it is reported at once.
fn refused_apply(status: StatusCode, body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Status {
        message: Option<String>,
    }
    status == StatusCode::INTERNAL_SERVER_ERROR
        && serde_json::from_slice::<Status>(body)
            .ok()
            .and_then(|s| s.message)
            .is_some_and(|m| m.starts_with("failed to create typed patch object"))
}

/// Failures of the connection rather than answers of the server: worth another try.
fn is_transient(err: &kube::Error) -> bool {
    matches!(err, kube::Error::HyperError(_) | kube::Error::Service(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::INTERNAL_SERVER_ERROR));
        let refused = br#"{"kind":"Status","status":"Failure","message":"failed to create typed patch object (dr/a; lrs.datarobot.com/v1, Kind=LongRunningService): .spec.foo: field not declared in schema","code":500}"#;
        assert!(refused_apply(StatusCode::INTERNAL_SERVER_ERROR, refused));
        assert!(!refused_apply(
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"kind":"Status","message":"etcdserver: request timed out","code":500}"#
        ));
        assert!(!refused_apply(StatusCode::SERVICE_UNAVAILABLE, refused));
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::GONE));
    }

    #[test]
    fn only_idempotent_requests_are_replayed_after_a_server_error() {
        let empty = HeaderMap::new();
        assert!(replay_safe(&http::Method::GET, &empty));
        assert!(replay_safe(&http::Method::DELETE, &empty));
        assert!(!replay_safe(&http::Method::POST, &empty));
        assert!(
            !replay_safe(&http::Method::PATCH, &empty),
            "a JSON patch is not"
        );
        let mut apply = HeaderMap::new();
        apply.insert(
            http::header::CONTENT_TYPE,
            APPLY_PATCH_CONTENT_TYPE.parse().unwrap(),
        );
        assert!(replay_safe(&http::Method::PATCH, &apply));
    }
}
