//! A typed client of the DataRobot API v2, for what kubectl-mlbackup needs: the version, the
//! deployment list (following `next`), one deployment, status changes and their status jobs.
//!
//! Every request goes through [`DataRobotClient::send`]: one retry policy (429 with
//! `Retry-After`, 502/503/504, broken connections and timeouts), one place that turns answers
//! into typed errors, and a count of the requests in flight. Redirects are never followed: the
//! status job answers 303 when it is done, and a redirect elsewhere must not carry the token.
//!
//! What a server sends is bounded: each answer is read up to [`MAX_ANSWER_BYTES`], a list up to
//! [`MAX_LIST_PAGES`] pages, a `next` link that leads back to a page already read ends the list
//! with an error, and `totalCount` is never trusted with an allocation. Every URL or header a
//! server sends back is redacted (the token removed) before it is shown or logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::retry::{RetryPolicy, retry_after};
use crate::secret::ApiToken;
use crate::tls::{TlsError, TlsOptions};

/// `LRS_DATAROBOT_URL`: the API URL, as the vendor runbook names it.
pub const URL_VAR: &str = "LRS_DATAROBOT_URL";
/// `DATAROBOT_ENDPOINT`: the API URL, as the official DataRobot clients name it.
pub const URL_VAR_ALT: &str = "DATAROBOT_ENDPOINT";

/// The path of the API v2 under the app URL.
const API_PATH: &str = "/api/v2/";
/// Deployments per list page. The API caps `limit`; a smaller cap is followed through `next`.
const PAGE_SIZE: u32 = 100;
/// List pages read at once after the first (reads only; the change bound is the engine's).
const LIST_PAGES_IN_FLIGHT: usize = 4;
/// The most bytes of one answer that are read: a page of 100 deployments is tens of KiB, so
/// anything near this is not a DataRobot answer, and reading on would only fill the memory.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;
/// The most pages of one deployment list: a million deployments at the API's page size.
pub const MAX_LIST_PAGES: usize = 10_000;

/// The base of the API v2, normalised once: `https://host[/prefix]/api/v2/`, whether it was
/// given as the app URL (`https://host`, as in the runbook) or as the API endpoint
/// (`https://host/api/v2`, as the Python client takes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiUrl(Url);

impl ApiUrl {
    pub fn parse(text: &str) -> Result<ApiUrl, ApiError> {
        let invalid = |reason| ApiError::InvalidUrl {
            url: text.to_string(),
            reason,
        };
        let mut url = Url::parse(text.trim()).map_err(|_| invalid("it is not an absolute URL"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid("it must start with https:// (or http://)"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials do not belong in the URL; give the token through the environment or --token-file",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must not have a query or fragment"));
        }
        let path = url.path().trim_end_matches('/');
        let base = if path.ends_with("/api/v2") {
            format!("{path}/")
        } else {
            format!("{path}{API_PATH}")
        };
        url.set_path(&base);
        Ok(ApiUrl(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// A URL under the API: `relative` must not start with `/`.
    fn join(&self, relative: &str) -> Url {
        self.0
            .join(relative)
            .expect("relative API paths are valid URL references")
    }

    /// A URL the server handed back (`next`, `Location`), made safe to send the token to: kept
    /// when it is under this API on the same origin; moved onto this origin when only the
    /// origin differs (a server behind a proxy often builds them from its public name, while
    /// the helper talks to it by its service name); refused otherwise.
    pub fn adopt(&self, text: &str, relative_to: &Url) -> Result<Url, ApiError> {
        let foreign = || ApiError::ForeignUrl {
            url: text.to_string(),
            api: self.to_string(),
        };
        let url = relative_to.join(text).map_err(|_| foreign())?;
        if !url.path().starts_with(self.0.path()) {
            return Err(foreign());
        }
        if url.origin() == self.0.origin() {
            return Ok(url);
        }
        let mut moved = self.0.clone();
        moved.set_path(url.path());
        moved.set_query(url.query());
        log::debug!(
            "the API answered a URL on another origin ({}); following it on {}",
            url.origin().ascii_serialization(),
            self.0.origin().ascii_serialization()
        );
        Ok(moved)
    }
}

impl std::fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl Serialize for ApiUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for ApiUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ApiUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The two statuses a deployment can be asked to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetStatus {
    Active,
    Inactive,
}

impl TargetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Active => "active",
            TargetStatus::Inactive => "inactive",
        }
    }

    /// Whether a deployment's `status` field says it is in this status.
    pub fn is(self, status: Option<&str>) -> bool {
        status == Some(self.as_str())
    }
}

impl std::fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment, as far as kubectl-mlbackup cares. `status` is kept as the API spells it
/// (`active`, `inactive`, `launching`, `errored`, ... or absent), so unknown values survive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// `GET version/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiVersion {
    pub major: u64,
    pub minor: u64,
    #[serde(default)]
    pub version_string: String,
    #[serde(default)]
    pub released_version: Option<String>,
}

/// How the API took a status change request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusRequest {
    /// 202: a status job was started; poll it at this URL.
    Accepted { job: Url },
    /// 422: the API refused the change; usually because the deployment already has the
    /// status (confirm with a GET before believing it).
    Refused { message: String },
    /// 409: another status change of this deployment is still running.
    Busy { message: String },
}

/// Where a status job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// INITIALIZED or RUNNING.
    Running(String),
    /// 303 (or a COMPLETED body): the deployment has its new status.
    Done,
    /// ERROR or ABORTED, with the job's message.
    Failed(String),
}

/// A failure talking to the DataRobot API, in the operator's terms.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("`{url}` is not a usable DataRobot URL: {reason}")]
    InvalidUrl { url: String, reason: &'static str },

    #[error("the DataRobot API at {api} refused the token (401 Unauthorized)")]
    Unauthorized { api: String },

    #[error(
        "the token's user lacks the MLOps admin role or access to {what} (403 Forbidden): {message}"
    )]
    Forbidden { what: String, message: String },

    #[error("{what} does not exist or is not visible to the token's user (404)")]
    NotFound { what: String },

    #[error("no DataRobot API v2 answers at {api} (404 on {api}version/)")]
    NotDataRobot { api: String },

    #[error("cannot reach the DataRobot API at {api}: {reason}")]
    Unreachable { api: String, reason: String },

    #[error("the TLS connection to {api} failed: {source}")]
    Tls {
        api: String,
        #[source]
        source: rustls::Error,
    },

    #[error("no answer from {url} within {}s", timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },

    #[error("{method} {url} answered {status}: {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },

    #[error("the answer of {url} is not what the DataRobot API sends")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("the answer of {url} is larger than {} MiB, more than any DataRobot API answer; it was not read", MAX_ANSWER_BYTES >> 20)]
    TooLarge { url: String },

    #[error(
        "the deployment list never ends: its `next` link leads back to {url}, a page already read"
    )]
    ListLoop { url: String },

    #[error(
        "the deployment list goes on for more than {MAX_LIST_PAGES} pages; it was not read to its end"
    )]
    TooManyPages,

    #[error("{url} answered a redirect ({status}) to {location}, which is not followed")]
    Redirect {
        url: String,
        status: u16,
        location: String,
    },

    #[error("the API pointed to {url}, outside {api}; the token is not sent there")]
    ForeignUrl { url: String, api: String },

    #[error("stopped before an answer{}", if *.after_lost_attempt { " (an earlier attempt may have been carried out)" } else { "" })]
    Interrupted { after_lost_attempt: bool },

    #[error("cannot set up TLS for the DataRobot API")]
    TlsSetup(#[source] TlsError),

    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// What kind of failure an [`ApiError`] is: stable names for the wire protocol and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    InvalidUrl,
    Unauthorized,
    Forbidden,
    NotFound,
    NotDataRobot,
    Unreachable,
    Tls,
    Timeout,
    Http,
    /// The answer is not what the API sends: malformed, too large, or a list without an end.
    Decode,
    Redirect,
    ForeignUrl,
    Setup,
    /// The token was missing or unusable.
    Token,
    /// The request to the helper was unusable (bad JSON, other protocol version).
    Protocol,
    /// A snapshot or plan was unusable.
    Plan,
    /// The run was stopped (SIGINT or the overall timeout) while waiting to retry.
    Interrupted,
    /// Anything else.
    Other,
}

impl ApiError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            ApiError::Unauthorized { .. } => ErrorKind::Unauthorized,
            ApiError::Forbidden { .. } => ErrorKind::Forbidden,
            ApiError::NotFound { .. } => ErrorKind::NotFound,
            ApiError::NotDataRobot { .. } => ErrorKind::NotDataRobot,
            ApiError::Unreachable { .. } => ErrorKind::Unreachable,
            ApiError::Tls { .. } => ErrorKind::Tls,
            ApiError::Timeout { .. } => ErrorKind::Timeout,
            ApiError::Status { .. } => ErrorKind::Http,
            ApiError::Decode { .. }
            | ApiError::TooLarge { .. }
            | ApiError::ListLoop { .. }
            | ApiError::TooManyPages => ErrorKind::Decode,
            ApiError::Redirect { .. } => ErrorKind::Redirect,
            ApiError::ForeignUrl { .. } => ErrorKind::ForeignUrl,
            ApiError::Interrupted { .. } => ErrorKind::Interrupted,
            ApiError::TlsSetup(_) | ApiError::Client(_) => ErrorKind::Setup,
        }
    }

    /// What the operator can do about it.
    pub fn hint(&self) -> Option<String> {
        hint_for(self.kind())
    }
}

/// The hint for a kind of failure (shared by local errors and errors reported by the helper).
pub fn hint_for(kind: ErrorKind) -> Option<String> {
    let text = match kind {
        ErrorKind::InvalidUrl | ErrorKind::NotDataRobot => {
            "give the app URL (https://datarobot.example.com) or the API endpoint \
             (https://datarobot.example.com/api/v2) with --api-url or LRS_DATAROBOT_URL"
        }
        ErrorKind::Unauthorized => {
            "the token was refused: it is wrong, expired or revoked; create a new API key in \
             DataRobot under Settings > API keys and set LRS_DATAROBOT_API_TOKEN (or use \
             --token-file)"
        }
        ErrorKind::Forbidden => {
            "use the API key of a user with the MLOps admin role (or the owner of the \
             deployment); a re-run with that key is safe"
        }
        ErrorKind::Unreachable | ErrorKind::Timeout => {
            "check the URL and that this machine can reach it (proxy, VPN, firewall); a re-run \
             is safe"
        }
        ErrorKind::Tls => {
            "if the server uses a private CA, pass its certificate with --ca-file PEM (or set \
             SSL_CERT_FILE); --insecure-skip-tls-verify skips the check (not recommended)"
        }
        ErrorKind::Redirect => "use the URL the server redirects to as --api-url",
        ErrorKind::Token => {
            "export LRS_DATAROBOT_API_TOKEN with the API key of a user with the MLOps admin \
             role (Settings > API keys in DataRobot), or pass --token-file PATH"
        }
        ErrorKind::Protocol => "use the mlbackup-helper of the same release as the plugin",
        ErrorKind::NotFound
        | ErrorKind::Http
        | ErrorKind::Decode
        | ErrorKind::ForeignUrl
        | ErrorKind::Setup
        | ErrorKind::Plan
        | ErrorKind::Interrupted
        | ErrorKind::Other => return None,
    };
    Some(text.to_string())
}

/// How to build a [`DataRobotClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The longest one request may take (connect, send, answer).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub tls: TlsOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            tls: TlsOptions::default(),
        }
    }
}

/// The requests in flight right now, and the most there ever were.
#[derive(Debug, Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An answer of the API, read whole.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    url: Url,
    /// An earlier attempt broke off after the request may have reached the server.
    after_lost_attempt: bool,
}

/// A client of one DataRobot API with one token. Cheap to clone.
#[derive(Clone)]
pub struct DataRobotClient {
    http: reqwest::Client,
    api: ApiUrl,
    token: ApiToken,
    retry: RetryPolicy,
    timeout: Duration,
    in_flight: Arc<InFlight>,
    /// Cancelled when the run stops: retries are not waited for any more.
    stop: CancellationToken,
}

impl std::fmt::Debug for DataRobotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataRobotClient")
            .field("api", &self.api.to_string())
            .field("token", &self.token)
            .finish()
    }
}

/// The deployments in their order, each once (the first time it appears).
fn once_each(deployments: Vec<Deployment>) -> Vec<Deployment> {
    let mut seen = std::collections::HashSet::new();
    deployments
        .into_iter()
        .filter(|d| seen.insert(d.id.clone()))
        .collect()
}

/// One page of `GET deployments/`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    data: Vec<Deployment>,
    #[serde(default)]
    next: Option<String>,
    /// How many deployments the whole list holds (the API sends it with every page). A claim
    /// of the server's: it only decides whether pages are read at once, never a size.
    #[serde(default)]
    total_count: Option<u64>,
}

impl DataRobotClient {
    pub fn new(
        api: ApiUrl,
        token: ApiToken,
        options: &ClientOptions,
    ) -> Result<DataRobotClient, ApiError> {
        crate::tls::install_crypto_provider();
        let tls = crate::tls::client_config(&options.tls).map_err(ApiError::TlsSetup)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("kubectl-mlbackup/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ApiError::Client)?;
        Ok(DataRobotClient {
            http,
            api,
            token,
            retry: options.retry,
            timeout: options.request_timeout,
            in_flight: Arc::default(),
            stop: CancellationToken::new(),
        })
    }

    /// The same client (same connections and in-flight count), giving up waiting to retry once
    /// `stop` is cancelled; a request already sent is still answered.
    pub fn stopping_with(&self, stop: CancellationToken) -> DataRobotClient {
        DataRobotClient {
            stop,
            ..self.clone()
        }
    }

    pub fn api(&self) -> &ApiUrl {
        &self.api
    }

    /// The most requests this client had in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(Ordering::SeqCst)
    }

    /// `GET version/`: also proves that the URL is a DataRobot API and the token is accepted.
    pub async fn version(&self) -> Result<ApiVersion, ApiError> {
        let answer = self
            .send(Method::GET, self.api.join("version/"), None)
            .await?;
        match answer.status {
            StatusCode::OK => self.decode(&answer),
            StatusCode::NOT_FOUND => Err(ApiError::NotDataRobot {
                api: self.api.to_string(),
            }),
            _ => Err(self.failure(&Method::GET, &answer, "the API version")),
        }
    }

    /// Every deployment visible to the token's user. When the first page gives the total,
    /// the other pages are read at once by `offset` (the same parameters the API's `next` links
    /// carry). If the pages do not add up to one consistent list (deployments came or went while
    /// reading, shifting the pages), the list is read again from the start, page by page,
    /// following `next`. Offset pages cannot promise a snapshot of a list that keeps changing,
    /// so the result never holds a deployment twice (it would be changed twice).
    pub async fn list_deployments(&self) -> Result<Vec<Deployment>, ApiError> {
        let first_url = self.api.join(&format!("deployments/?limit={PAGE_SIZE}"));
        let (first, first_url) = self.list_page(first_url.clone()).await?;
        if first.next.as_deref().is_none_or(str::is_empty) {
            return Ok(once_each(first.data));
        }
        if let Some(all) = self.read_remaining_pages_at_once(&first).await? {
            return Ok(all);
        }
        log::info!("reading the deployment list page by page, following `next`");
        let mut all = Vec::new();
        let mut read = std::collections::HashSet::new();
        let mut next = Some(first_url.to_string());
        let mut relative_to = first_url;
        while let Some(link) = next.filter(|link| !link.is_empty()) {
            let url = self.adopt(&link, &relative_to)?;
            if !read.insert(url.to_string()) {
                return Err(ApiError::ListLoop {
                    url: self.shown(&url),
                });
            }
            if read.len() > MAX_LIST_PAGES {
                return Err(ApiError::TooManyPages);
            }
            let (page, url) = self.list_page(url).await?;
            all.extend(page.data);
            next = page.next;
            relative_to = url;
        }
        Ok(once_each(all))
    }

    /// The whole list from pages 2.. read concurrently, or `None` when the first page gives no
    /// total or the pages are not one consistent list.
    async fn read_remaining_pages_at_once(
        &self,
        first: &ListPage,
    ) -> Result<Option<Vec<Deployment>>, ApiError> {
        use futures::{StreamExt, TryStreamExt};
        let (Some(total), page_len) = (first.total_count, first.data.len()) else {
            return Ok(None);
        };
        if page_len == 0 {
            return Ok(None);
        }
        // A claim beyond what pages can hold is not believed; `next` (bounded) decides then.
        let Ok(total) = usize::try_from(total) else {
            return Ok(None);
        };
        if total.div_ceil(page_len) > MAX_LIST_PAGES {
            log::info!("the deployment list claims {total} deployments (totalCount); not believed");
            return Ok(None);
        }
        let offsets = (page_len..total).step_by(page_len);
        let pages: Vec<ListPage> = futures::stream::iter(offsets)
            .map(|offset| {
                let url = self
                    .api
                    .join(&format!("deployments/?offset={offset}&limit={page_len}"));
                async move { self.list_page(url).await.map(|(page, _)| page) }
            })
            .buffered(LIST_PAGES_IN_FLIGHT)
            .try_collect()
            .await?;
        let ends_the_list = pages
            .last()
            .is_some_and(|last| last.next.as_deref().is_none_or(str::is_empty));
        let mut all = first.data.clone();
        for page in pages {
            all.extend(page.data);
        }
        let mut ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let consistent = ends_the_list && all.len() == total && ids.len() == total;
        Ok(consistent.then_some(all))
    }

    /// One page of the deployment list, and the URL it came from (for relative `next` links).
    async fn list_page(&self, url: Url) -> Result<(ListPage, Url), ApiError> {
        let answer = self.send(Method::GET, url, None).await?;
        if answer.status != StatusCode::OK {
            return Err(self.failure(&Method::GET, &answer, "the deployment list"));
        }
        let page: ListPage = self.decode(&answer)?;
        Ok((page, answer.url))
    }

    /// `GET deployments/{id}/`.
    pub async fn deployment(&self, id: &str) -> Result<Deployment, ApiError> {
        let url = self.api.join(&format!("deployments/{}/", checked_id(id)?));
        let answer = self.send(Method::GET, url, None).await?;
        match answer.status {
            StatusCode::OK => self.decode(&answer),
            _ => Err(self.failure(&Method::GET, &answer, &format!("deployment {id}"))),
        }
    }

    /// `PATCH deployments/{id}/status/`. The second value says whether an earlier attempt of
    /// this request broke off after it may have reached the server (so that a "refused" may
    /// be the answer to our own first attempt).
    pub async fn request_status(
        &self,
        id: &str,
        target: TargetStatus,
    ) -> Result<(StatusRequest, bool), ApiError> {
        let url = self
            .api
            .join(&format!("deployments/{}/status/", checked_id(id)?));
        let body = serde_json::json!({ "status": target.as_str() });
        let answer = self.send(Method::PATCH, url, Some(&body)).await?;
        let request = match answer.status {
            StatusCode::ACCEPTED => {
                let location = answer
                    .headers
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| ApiError::Status {
                        method: "PATCH".into(),
                        url: self.shown(&answer.url),
                        status: 202,
                        message: "the answer has no Location of a status job".into(),
                    })?;
                StatusRequest::Accepted {
                    job: self.adopt(location, &answer.url)?,
                }
            }
            StatusCode::UNPROCESSABLE_ENTITY => StatusRequest::Refused {
                message: self.message(&answer),
            },
            StatusCode::CONFLICT => StatusRequest::Busy {
                message: self.message(&answer),
            },
            _ => {
                return Err(self.failure(&Method::PATCH, &answer, &format!("deployment {id}")));
            }
        };
        Ok((request, answer.after_lost_attempt))
    }

    /// Polls a status job once (redirects not followed: 303 means done).
    pub async fn job(&self, url: &Url) -> Result<JobState, ApiError> {
        #[derive(Deserialize)]
        struct Job {
            #[serde(default)]
            status: String,
            #[serde(default)]
            message: Option<String>,
        }
        let answer = self.send(Method::GET, url.clone(), None).await?;
        match answer.status {
            StatusCode::SEE_OTHER => Ok(JobState::Done),
            StatusCode::OK => {
                let job: Job = self.decode(&answer)?;
                let message = crate::text::escape_controls(
                    &self.token.scrub(job.message.as_deref().unwrap_or_default()),
                )
                .into_owned();
                Ok(match job.status.to_ascii_uppercase().as_str() {
                    "COMPLETED" => JobState::Done,
                    "ERROR" | "ABORTED" => JobState::Failed(if message.is_empty() {
                        format!("the status job ended {}", job.status)
                    } else {
                        message
                    }),
                    _ => JobState::Running(job.status),
                })
            }
            _ => Err(self.failure(&Method::GET, &answer, "the status job")),
        }
    }

    /// Sends one request under the retry policy and reads the whole answer.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let mut attempt = 1;
        let mut after_lost_attempt = false;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, self.token.header_value());
            if let Some(body) = body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let started = Instant::now();
            let outcome = {
                let _guard = self.in_flight.enter();
                match request.send().await {
                    Ok(mut response) => {
                        let status = response.status();
                        let headers = response.headers().clone();
                        match read_capped(&mut response).await {
                            Ok(Some(body)) => Ok((status, headers, body)),
                            Ok(None) => {
                                return Err(ApiError::TooLarge {
                                    url: self.shown(&url),
                                });
                            }
                            Err(err) => Err(err),
                        }
                    }
                    Err(err) => Err(err),
                }
            };
            let retry_in = match outcome {
                Ok((status, headers, body)) => {
                    log::debug!(
                        "{method} {} {} in {} ms",
                        self.shown(&url),
                        status.as_u16(),
                        started.elapsed().as_millis()
                    );
                    let retryable = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    if !retryable || attempt >= self.retry.max_attempts {
                        return Ok(Answer {
                            status,
                            headers,
                            body,
                            url,
                            after_lost_attempt,
                        });
                    }
                    let wait = self.retry.delay(attempt, retry_after(&headers));
                    log::info!(
                        "{method} {}: {status}, retrying in {} ms",
                        self.shown(&url),
                        wait.as_millis()
                    );
                    wait
                }
                Err(err) => {
                    let failure = self.explain(&url, &err);
                    let transient = matches!(
                        failure,
                        ApiError::Unreachable { .. } | ApiError::Timeout { .. }
                    );
                    if !transient || attempt >= self.retry.max_attempts {
                        return Err(failure);
                    }
                    // A request that was sent may have been carried out; a connection that was
                    // never made carried nothing.
                    after_lost_attempt |= !err.is_connect();
                    let wait = self.retry.delay(attempt, None);
                    log::info!(
                        "{method} {}: {failure}, retrying in {} ms",
                        self.shown(&url),
                        wait.as_millis()
                    );
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(retry_in) => {}
                _ = self.stop.cancelled() => {
                    return Err(ApiError::Interrupted { after_lost_attempt });
                }
            }
            attempt += 1;
        }
    }

    /// A URL as it may be shown or logged: it may have come from the server (`next`,
    /// `Location`), which may have put the token into it.
    fn shown(&self, url: &Url) -> String {
        self.token.scrub(url.as_str())
    }

    /// [`ApiUrl::adopt`], with a refused URL redacted before it becomes an error.
    fn adopt(&self, text: &str, relative_to: &Url) -> Result<Url, ApiError> {
        self.api.adopt(text, relative_to).map_err(|err| match err {
            ApiError::ForeignUrl { url, api } => ApiError::ForeignUrl {
                url: self.token.scrub(&url),
                api,
            },
            other => other,
        })
    }

    /// A transport failure in the operator's terms.
    fn explain(&self, url: &Url, err: &reqwest::Error) -> ApiError {
        if let Some(tls) = rustls_error(err) {
            return ApiError::Tls {
                api: self.api.to_string(),
                source: tls,
            };
        }
        if err.is_timeout() {
            return ApiError::Timeout {
                url: self.shown(url),
                timeout: self.timeout,
            };
        }
        ApiError::Unreachable {
            api: self.api.to_string(),
            reason: self.token.scrub(&error_chain(err)),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, answer: &Answer) -> Result<T, ApiError> {
        serde_json::from_slice(&answer.body).map_err(|source| ApiError::Decode {
            url: self.shown(&answer.url),
            source,
        })
    }

    /// The server's `message` (or the start of its body), with the token scrubbed out and its
    /// control characters escaped.
    fn message(&self, answer: &Answer) -> String {
        let text = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|body| {
                body.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(200)
                    .collect()
            });
        // One line of an error or a table cell, whatever the server put into it.
        crate::text::escape_controls(&self.token.scrub(text.trim())).into_owned()
    }

    /// An answer that is not what the operation expects, as a typed error.
    fn failure(&self, method: &Method, answer: &Answer, what: &str) -> ApiError {
        match answer.status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized {
                api: self.api.to_string(),
            },
            StatusCode::FORBIDDEN => ApiError::Forbidden {
                what: what.to_string(),
                message: self.message(answer),
            },
            StatusCode::NOT_FOUND => ApiError::NotFound {
                what: what.to_string(),
            },
            status if status.is_redirection() => ApiError::Redirect {
                url: self.shown(&answer.url),
                status: status.as_u16(),
                location: self.token.scrub(
                    answer
                        .headers
                        .get(LOCATION)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()))
                        .as_deref()
                        .unwrap_or("nowhere"),
                ),
            },
            status => ApiError::Status {
                method: method.to_string(),
                url: self.shown(&answer.url),
                status: status.as_u16(),
                message: self.message(answer),
            },
        }
    }
}

/// The body of an answer, read chunk by chunk up to [`MAX_ANSWER_BYTES`]; `None` when it is
/// larger (said by `Content-Length` or found while reading), without reading the rest.
async fn read_capped(response: &mut reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// What the operator should know before the token is sent to `api`: that it travels in
/// cleartext (`http://`), or that nobody checks who receives it (`--insecure-skip-tls-verify`).
/// Said once per run, by whoever talks to the operator (the plugin, or the helper by hand).
pub fn transport_warning(api: &ApiUrl, tls: &TlsOptions) -> Option<String> {
    if api.as_url().scheme() == "http" {
        Some(format!(
            "{api} is plain http://: the token travels unencrypted, and anyone on the network \
             path can read it; use https:// where the API offers it"
        ))
    } else if tls.insecure_skip_tls_verify {
        Some(format!(
            "the certificate of {api} is NOT checked (--insecure-skip-tls-verify): anyone on the \
             network path can read the token"
        ))
    } else {
        None
    }
}

/// Ids go into URL paths: only what ObjectIds (and sane ids) are made of.
fn checked_id(id: &str) -> Result<&str, ApiError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(ApiError::NotFound {
            what: format!("deployment `{id}` (not a deployment id)"),
        })
    }
}

/// The rustls error behind a transport failure, if it is one. `io::Error` hides its inner
/// error from `source()`, so it is opened explicitly.
fn rustls_error(err: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(inner) = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(tls) = rustls_error(inner)
        {
            return Some(tls);
        }
        cause = current.source();
    }
    None
}

/// `outer: inner: innermost`, without repeating the URL reqwest puts in its own message.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(current) = cause {
        parts.push(current.to_string());
        cause = current.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_api_urls_normalise_to_one_base() {
        for text in [
            "https://dr.example.com",
            "https://dr.example.com/",
            "https://dr.example.com/api/v2",
            "https://dr.example.com/api/v2/",
        ] {
            assert_eq!(
                ApiUrl::parse(text).unwrap().to_string(),
                "https://dr.example.com/api/v2/",
                "{text}"
            );
        }
        assert_eq!(
            ApiUrl::parse("http://mmapp-app:8000/prefix")
                .unwrap()
                .to_string(),
            "http://mmapp-app:8000/prefix/api/v2/"
        );
        for bad in [
            "dr.example.com",
            "ftp://dr.example.com",
            "https://user:pw@dr.example.com",
            "https://dr.example.com/?token=x",
        ] {
            assert!(ApiUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_urls_stay_under_the_api_and_on_its_origin() {
        let api = ApiUrl::parse("https://dr.example.com").unwrap();
        let here = api.join("deployments/");
        assert_eq!(
            api.adopt(
                "https://dr.example.com/api/v2/deployments/?offset=100",
                &here
            )
            .unwrap()
            .as_str(),
            "https://dr.example.com/api/v2/deployments/?offset=100"
        );
        assert_eq!(
            api.adopt("/api/v2/status/j1/", &here).unwrap().as_str(),
            "https://dr.example.com/api/v2/status/j1/"
        );
        // A public name for the same API: followed on the origin the operator chose.
        assert_eq!(
            api.adopt("http://public.example.com/api/v2/status/j1/", &here)
                .unwrap()
                .as_str(),
            "https://dr.example.com/api/v2/status/j1/"
        );
        assert!(api.adopt("https://evil.example.com/steal", &here).is_err());
        assert!(api.adopt("/other/path", &here).is_err());
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert!(checked_id("65f0c0de0000000000000001").is_ok());
        for bad in ["", "../version", "a/b", "a?b", "a%2f"] {
            assert!(checked_id(bad).is_err(), "{bad}");
        }
    }
}
