//! The wire protocol between the plugin and the helper, and the report types both show.
//!
//! The plugin starts the helper (in the app pod, or runs the same code in its own process with
//! `--via local`). The helper writes `hello` (with `protocolVersion`) on stdout first; only once
//! the plugin has read and checked it does it write ONE line to the helper's stdin: a
//! [`Request`] as JSON, token included. It may follow with [`Control`] lines (`cancel` on
//! Ctrl-C). The helper never waits for stdin to end. After `hello` come progress events
//! (`started`, `finished` per deployment), then exactly one final event: `deployments` (for a
//! list), `report` (for a change) or `error`. Logs go to stderr. The token is never written
//! anywhere but that stdin line.

use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ApiUrl, Deployment, ErrorKind, TargetStatus};
use crate::secret::ApiToken;
use crate::tls::TlsOptions;

/// The version of the JSON Lines protocol (the `protocolVersion` of `hello` and of the request).
/// Either side refuses another version.
pub const PROTOCOL_VERSION: u32 = 2;

/// What the plugin asks the helper to do: the first line of the helper's stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub protocol_version: u32,
    pub api_url: ApiUrl,
    pub token: ApiToken,
    #[serde(default)]
    pub tls: TlsOptions,
    /// The longest one API request may take.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: f64,
    /// Log verbosity of the helper's stderr (as the plugin's `-v`).
    #[serde(default)]
    pub verbosity: u8,
    /// The longest a list may take in all (the part of a change's `--timeout` that listing may
    /// use: a server whose pages never end cannot hold the run); `None`: no overall bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_timeout_seconds: Option<f64>,
    pub operation: Operation,
}

fn default_request_timeout() -> f64 {
    30.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Operation {
    /// Check the API version and list every visible deployment.
    List,
    /// Bring these deployments to a status.
    Change(ChangeRequest),
}

/// A bulk status change, planned by the caller (see `plan`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    pub target: TargetStatus,
    pub deployments: Vec<PlannedChange>,
    /// Deployments changed at the same time (at most this many requests or status jobs).
    pub concurrency: usize,
    /// Wait until each deployment has the target status (else: until the API accepted it).
    pub wait: bool,
    /// The longest the whole change may take; what is left then is reported, not done.
    pub timeout_seconds: f64,
}

/// One deployment to change, with what is known of it beforehand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    pub id: String,
    pub label: String,
    pub before: Option<String>,
}

/// A line the plugin may write to the helper's stdin after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "camelCase")]
pub enum Control {
    /// Stop: finish the API requests in flight, start nothing new, and report (Ctrl-C).
    Cancel,
}

/// One line of the helper's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// Always the first line.
    #[serde(rename_all = "camelCase")]
    Hello {
        protocol_version: u32,
        helper_version: String,
    },
    /// Work on a deployment started.
    Started { id: String },
    /// Work on a deployment ended (whatever the outcome).
    Finished { item: ItemReport },
    /// Final event of a list.
    Deployments { deployments: Vec<Deployment> },
    /// Final event of a change.
    Report { report: ChangeReport },
    /// Final event when the operation could not run.
    Error { error: WireError },
}

impl Event {
    /// Whether this event ends the stream.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Event::Deployments { .. } | Event::Report { .. } | Event::Error { .. }
        )
    }

    pub fn hello() -> Event {
        Event::Hello {
            protocol_version: PROTOCOL_VERSION,
            helper_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What happened to one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// It now has the target status (confirmed, with --wait).
    Changed,
    /// The API accepted the change (without --wait, or interrupted before it was confirmed).
    Requested,
    /// It already had the target status.
    Unchanged,
    /// Left alone: named with --only but not part of the plan (the message says why).
    Skipped,
    /// Would be changed (--dry-run).
    WouldChange,
    /// Recorded in the snapshot but no longer visible.
    Missing,
    /// The change failed; the message says why.
    Failed,
    /// Not tried: the run was interrupted or timed out first.
    NotAttempted,
    /// Under way when the connection to the helper broke: it may or may not have happened.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Changed => "changed",
            Outcome::Requested => "requested",
            Outcome::Unchanged => "unchanged",
            Outcome::Skipped => "skipped",
            Outcome::WouldChange => "would change",
            Outcome::Missing => "missing",
            Outcome::Failed => "failed",
            Outcome::NotAttempted => "not attempted",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One line of the per-deployment report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemReport {
    pub id: String,
    pub label: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For failures: what kind (so that the plugin can give the right hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
}

impl ItemReport {
    pub fn new(planned: &PlannedChange, outcome: Outcome) -> ItemReport {
        ItemReport {
            id: planned.id.clone(),
            label: planned.label.clone(),
            before: planned.before.clone(),
            after: None,
            outcome,
            message: None,
            error_kind: None,
        }
    }

    pub fn after(mut self, status: impl Into<String>) -> Self {
        self.after = Some(status.into());
        self
    }

    pub fn message(mut self, text: impl Into<String>) -> Self {
        self.message = Some(text.into());
        self
    }

    pub fn failed(planned: &PlannedChange, err: &ApiError) -> ItemReport {
        ItemReport {
            error_kind: Some(err.kind()),
            ..ItemReport::new(planned, Outcome::Failed).message(err.to_string())
        }
    }
}

/// Why a change stopped before the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    Interrupted,
    TimedOut,
}

/// The result of a bulk change, in plan order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeReport {
    pub target: TargetStatus,
    pub wait: bool,
    pub items: Vec<ItemReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopReason>,
    /// The most API requests the engine had in flight at once.
    pub max_in_flight: usize,
    pub seconds: f64,
}

impl ChangeReport {
    /// How many deployments ended with each outcome.
    pub fn counts(&self) -> std::collections::BTreeMap<Outcome, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for item in &self.items {
            *counts.entry(item.outcome).or_insert(0) += 1;
        }
        counts
    }

    /// Whether any deployment failed or was not attempted (the command then exits non-zero).
    pub fn incomplete(&self) -> bool {
        self.items.iter().any(|i| {
            matches!(
                i.outcome,
                Outcome::Failed | Outcome::NotAttempted | Outcome::Unknown
            )
        })
    }
}

/// An error as it crosses the wire: its kind, its message (causes included) and its hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{message}")]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl WireError {
    /// `error: cause: cause`, with the first hint any link of the chain has.
    pub fn from_error(kind: ErrorKind, err: &(dyn std::error::Error + 'static)) -> WireError {
        WireError {
            kind,
            message: crate::text::error_chain(err),
            hint: crate::api::hint_for(kind),
        }
    }
}

impl From<&ApiError> for WireError {
    fn from(err: &ApiError) -> WireError {
        WireError::from_error(err.kind(), err)
    }
}
