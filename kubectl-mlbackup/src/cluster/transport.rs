//! Sending requests to the API server under the one retry policy (`mlbackup_helper::retry`,
//! shared with the DataRobot client): 429 and 5xx answers and broken connections are retried
//! with capped exponential backoff and jitter, honouring `Retry-After`; everything else is
//! explained once, in the user's terms.

use std::time::Instant;

use http::{HeaderMap, Request, StatusCode};
use kube::client::Body;
use serde::de::DeserializeOwned;

use super::{Cluster, ClusterError, RequestScope};

pub use mlbackup_helper::retry::RetryPolicy;
use mlbackup_helper::retry::retry_after;

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

/// Sends a request and decodes the JSON answer, retrying what is worth retrying.
pub async fn send_json<T: DeserializeOwned>(
    cluster: &Cluster,
    request: Request<Vec<u8>>,
    scope: &RequestScope<'_>,
) -> Result<T, ClusterError> {
    let policy = cluster.retry;
    let request = Replayable::new(request);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let outcome = cluster.client.send(request.build()).await;
        let (status, headers, body) = match outcome {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                match answer.into_body().collect_bytes().await {
                    Ok(body) => (status, headers, body),
                    Err(err) if attempt < policy.max_attempts => {
                        log::info!(
                            "{} {}: answer broken off ({err}), retrying",
                            request.method,
                            request.uri
                        );
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    Err(err) => return Err(cluster.explain(err, Some(scope))),
                }
            }
            Err(err) if is_transient(&err) && attempt < policy.max_attempts => {
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
            return serde_json::from_slice(&body).map_err(|source| ClusterError::Decode {
                url: cluster.server_url.clone(),
                source: kube::Error::SerdeError(source),
            });
        }
        if retryable(status) && attempt < policy.max_attempts {
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
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::GONE));
    }
}
