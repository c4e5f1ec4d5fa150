//! Sending requests to the API server under the plugin's one retry policy: 429 and 5xx answers
//! and broken connections are retried with capped exponential backoff and jitter, honouring
//! `Retry-After`; everything else is explained once, in the user's terms.

use std::time::{Duration, Instant};

use http::{HeaderMap, Request, StatusCode};
use kube::client::Body;
use serde::de::DeserializeOwned;

use super::{Cluster, ClusterError, RequestScope};

/// How often and how long to retry. Reads are idempotent, so retrying them is always safe.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A server asking for more than this is not waited for longer than this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: the server's `Retry-After` when it gave one, else
    /// exponential backoff with full jitter (so many clients do not retry in lockstep).
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let jittered = rand::random_range(0.5..=1.0) * ceiling.as_secs_f64();
        Duration::from_secs_f64(jittered)
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
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
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        for attempt in 1..10 {
            let delay = policy.delay(attempt, None);
            assert!(delay <= policy.max_delay, "{delay:?}");
            let ceiling = policy.base_delay * 2u32.pow(attempt - 1);
            assert!(delay >= ceiling.min(policy.max_delay) / 2, "{delay:?}");
        }
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            policy.max_retry_after
        );
    }

    #[test]
    fn only_throttling_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::GONE));
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
