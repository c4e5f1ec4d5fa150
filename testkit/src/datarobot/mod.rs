//! Fake DataRobot API v2: the deployment list, one deployment, status changes as asynchronous
//! status jobs, and the version endpoint, shaped so that the official `datarobot` Python client
//! and the plugin's helper cannot tell it from the real service for what they use.
//!
//! What the fake does where the real service could not be checked (no live server here) is
//! written down next to the code that does it, and summarised in `api.rs`.

mod api;
mod render;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::faults::{Faults, RequestLog};
use crate::serve::{RunningServer, ServerOptions, serve};
use crate::tls::TestPki;

/// A deployment's `status` field, spelled as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeploymentStatus {
    Active,
    Inactive,
    Launching,
    Errored,
}

impl DeploymentStatus {
    /// The wire spelling (`"active"`, `"inactive"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Active => "active",
            DeploymentStatus::Inactive => "inactive",
            DeploymentStatus::Launching => "launching",
            DeploymentStatus::Errored => "errored",
        }
    }

    /// Parses the wire spelling; `None` for anything else (the API is case-sensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(DeploymentStatus::Active),
            "inactive" => Some(DeploymentStatus::Inactive),
            "launching" => Some(DeploymentStatus::Launching),
            "errored" => Some(DeploymentStatus::Errored),
            _ => None,
        }
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment as a test puts it into the fake, and as the fake reports its current state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSeed {
    /// 24 lowercase hex digits, like the real (MongoDB ObjectId) ids; see [`object_id`].
    pub id: String,
    pub label: String,
    pub status: DeploymentStatus,
    pub description: Option<String>,
    /// `"LOW"`, `"MODERATE"`, `"HIGH"` or `"CRITICAL"` on the real service; `None` renders `null`.
    pub importance: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl DeploymentSeed {
    /// A deployment with a fresh random id, no description, `LOW` importance, created now.
    pub fn new(label: impl Into<String>, status: DeploymentStatus) -> Self {
        DeploymentSeed {
            id: random_object_id(),
            label: label.into(),
            status,
            description: None,
            importance: Some("LOW".to_string()),
            created_at: Utc::now(),
        }
    }
}

/// A deterministic ObjectId-like id (24 lowercase hex digits) for sample data: the same `n`
/// always gives the same id, different `n` different ids.
pub fn object_id(n: u64) -> String {
    // A fixed 8-hex-digit "timestamp" prefix like a real ObjectId's, then the counter.
    format!("65f0c0de{n:016x}")
}

/// A random ObjectId-like id.
pub fn random_object_id() -> String {
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
        .collect()
}

/// How a status change ended (or that it has not yet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "message")]
pub enum StatusOutcome {
    /// The job is INITIALIZED or RUNNING.
    Pending,
    /// The job completed and the deployment now has the requested status.
    Completed,
    /// The job ended in ERROR (see [`FakeDataRobot::fail_status_changes_of`]); the status is
    /// unchanged. Carries the job's message.
    Failed(String),
}

/// One accepted `PATCH deployments/{id}/status/`, from request to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub deployment_id: String,
    pub from: DeploymentStatus,
    pub to: DeploymentStatus,
    pub requested_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The status job's id (the last path segment of the `Location` answered to the PATCH).
    pub job_id: String,
    pub outcome: StatusOutcome,
}

/// How to start a [`FakeDataRobot`].
#[derive(Clone, Debug)]
pub struct FakeDataRobotOptions {
    /// Serve HTTPS with a fresh test CA (see [`FakeDataRobot::ca_pem`]); plain HTTP otherwise.
    pub tls: bool,
    /// A token of a user with the MLOps admin role: may list deployments and change statuses.
    pub admin_token: String,
    /// A valid token of a user without that role: may list and read, a status change gets 403.
    pub user_token: String,
    /// How long a status job takes from the PATCH to its completion.
    pub status_change_duration: Duration,
    /// The largest `limit` honoured by the list endpoint; larger ones are capped to it.
    pub page_size_limit: usize,
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
}

impl Default for FakeDataRobotOptions {
    fn default() -> Self {
        FakeDataRobotOptions {
            tls: true,
            admin_token: random_token(),
            user_token: random_token(),
            status_change_duration: Duration::from_millis(200),
            page_size_limit: 100,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// A random token shaped like a DataRobot API key (base64-ish, long enough to be unguessable).
pub fn random_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..48)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Which user a request's token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    Admin,
    User,
}

/// Where a status job is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    Running,
    Completed,
    Failed(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub id: String,
    pub deployment_id: String,
    pub created: DateTime<Utc>,
    pub state: JobState,
    /// Index of this job's entry in `State::history`.
    pub history_index: usize,
}

/// Everything the fake knows; one lock, held only for short, non-async sections.
#[derive(Default)]
pub(crate) struct State {
    pub deployments: BTreeMap<String, DeploymentSeed>,
    pub jobs: BTreeMap<String, Job>,
    pub history: Vec<StatusChange>,
    /// Deployments whose next status job is to end in ERROR.
    pub fail_next: HashSet<String>,
    pub in_flight: usize,
    pub max_in_flight: usize,
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub admin_token: String,
    pub user_token: String,
    pub status_change_duration: Duration,
    pub page_size_limit: usize,
    /// `https://127.0.0.1:PORT`, known once the listener is bound; absolute `next` and
    /// `Location` URLs are built from it.
    pub base_url: Mutex<String>,
}

impl Shared {
    pub(crate) fn base_url(&self) -> String {
        self.base_url.lock().unwrap().clone()
    }
}

/// A running fake DataRobot API; stops when dropped.
pub struct FakeDataRobot {
    shared: Arc<Shared>,
    server: RunningServer,
    ca_pem: Option<String>,
    faults: Faults,
    log: RequestLog,
}

impl FakeDataRobot {
    /// Binds, and serves in the background until the value is dropped.
    pub async fn start(options: FakeDataRobotOptions) -> anyhow::Result<FakeDataRobot> {
        anyhow::ensure!(
            options.admin_token != options.user_token,
            "the admin and user tokens must differ"
        );
        anyhow::ensure!(
            options.page_size_limit > 0,
            "page_size_limit must be at least 1"
        );
        let pki = if options.tls {
            Some(TestPki::generate()?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            admin_token: options.admin_token,
            user_token: options.user_token,
            status_change_duration: options.status_change_duration,
            page_size_limit: options.page_size_limit,
            base_url: Mutex::new(String::new()),
        });
        let faults = Faults::default();
        let log = RequestLog::default();
        let server = serve(
            api::router(shared.clone()),
            options.bind,
            ServerOptions {
                tls: pki.as_ref().map(|p| p.server_config.clone()),
                faults: faults.clone(),
                log: log.clone(),
                error_body: Arc::new(api::error_response),
            },
        )
        .await?;
        *shared.base_url.lock().unwrap() = server.base_url();
        Ok(FakeDataRobot {
            shared,
            server,
            ca_pem: pki.map(|p| p.ca_pem),
            faults,
            log,
        })
    }

    /// The app URL, as in the runbook: `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// The API endpoint, as the Python client takes it: `https://127.0.0.1:PORT/api/v2`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v2", self.server.base_url())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The PEM of the CA that signed the server certificate; `None` when serving plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    pub fn user_token(&self) -> &str {
        &self.shared.user_token
    }

    /// Adds a deployment, or replaces the one with the same id.
    pub fn add_deployment(&self, seed: DeploymentSeed) {
        let mut state = self.shared.state.lock().unwrap();
        state.deployments.insert(seed.id.clone(), seed);
    }

    /// The current state of one deployment.
    pub fn deployment(&self, id: &str) -> Option<DeploymentSeed> {
        self.shared
            .state
            .lock()
            .unwrap()
            .deployments
            .get(id)
            .cloned()
    }

    /// The current state of every deployment, in the order the list endpoint answers them.
    pub fn deployments(&self) -> Vec<DeploymentSeed> {
        let state = self.shared.state.lock().unwrap();
        api::listing_order(&state)
    }

    /// Every accepted status change, in the order they were requested.
    pub fn status_history(&self) -> Vec<StatusChange> {
        self.shared.state.lock().unwrap().history.clone()
    }

    /// Makes the next status job of this deployment end in ERROR, leaving its status as it is.
    pub fn fail_status_changes_of(&self, deployment_id: &str) {
        let mut state = self.shared.state.lock().unwrap();
        state.fail_next.insert(deployment_id.to_string());
    }

    /// The most status jobs that were INITIALIZED or RUNNING at the same time.
    pub fn max_in_flight_status_jobs(&self) -> usize {
        self.shared.state.lock().unwrap().max_in_flight
    }

    /// Starts counting [`FakeDataRobot::max_in_flight_status_jobs`] afresh (from the jobs
    /// running now).
    pub fn reset_max_in_flight_status_jobs(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.max_in_flight = state.in_flight;
    }

    /// The status jobs INITIALIZED or RUNNING right now.
    pub fn in_flight_status_jobs(&self) -> usize {
        self.shared.state.lock().unwrap().in_flight
    }

    /// Fault rules, applied below the API (latency, 429, 5xx, dropped connections).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every request the server saw.
    pub fn requests(&self) -> &RequestLog {
        &self.log
    }
}

#[cfg(test)]
mod tests;
