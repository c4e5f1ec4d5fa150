//! The DataRobot API, reached through the helper's engine (`mlbackup_helper`): where the
//! requests run ([`Route`]: the engine in this process, or the helper in the app pod, `in_pod`,
//! found by `helper_binary`), what every request carries, and the answers the commands read. The
//! command layer resolves it from the flags once and hands it to the work that needs it.

pub mod helper_binary;
pub mod in_pod;

use std::time::Duration;

use mlbackup_helper::api::{ApiUrl, Deployment};
use mlbackup_helper::engine;
use mlbackup_helper::protocol::{Event, Operation, PROTOCOL_VERSION, Request};
use mlbackup_helper::secret::ApiToken;
use mlbackup_helper::tls::TlsOptions;
use tokio_util::sync::CancellationToken;

use self::in_pod::{InPod, InPodError};
use crate::exit::Interrupted;

/// The longest one API request may take unless `--request-timeout` says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: f64 = 30.0;

/// Where the engine runs the requests (`--via`).
pub enum Route {
    /// In this process, against an API URL this machine reaches.
    Local,
    /// In the helper uploaded into the app pod, started before the first request.
    Pod(Box<InPod>),
}

/// The DataRobot API as this run reaches it.
pub struct Api {
    pub route: Route,
    pub api_url: ApiUrl,
    pub token: ApiToken,
    pub tls: TlsOptions,
    /// The longest one API request may take.
    pub request_timeout_seconds: f64,
    /// `-v`, passed on to the engine.
    pub verbosity: u8,
}

impl Api {
    /// A request for `operation`; `list_timeout` bounds the list it starts with.
    pub fn request(&self, operation: Operation, list_timeout: Option<Duration>) -> Request {
        Request {
            protocol_version: PROTOCOL_VERSION,
            api_url: self.api_url.clone(),
            token: self.token.clone(),
            tls: self.tls.clone(),
            request_timeout_seconds: self.request_timeout_seconds,
            verbosity: self.verbosity,
            list_timeout_seconds: list_timeout.map(|t| t.as_secs_f64()),
            operation,
        }
    }

    /// Runs a request where the route says and returns its final event; progress events go to
    /// `progress` as they arrive.
    pub async fn run(
        &self,
        request: Request,
        cancel: &CancellationToken,
        progress: &(dyn Fn(&Event) + Sync),
    ) -> Result<Event, InPodError> {
        match &self.route {
            Route::Local => Ok(engine::final_event(request, cancel, progress).await),
            Route::Pod(in_pod) => in_pod.run(&request, cancel, progress).await,
        }
    }

    /// The deployments visible to the token's user; `within` bounds the whole list (a change's
    /// `--timeout`). An interruption is an [`Interrupted`] error (nothing was changed).
    pub async fn list(
        &self,
        cancel: &CancellationToken,
        within: Option<Duration>,
    ) -> anyhow::Result<Vec<Deployment>> {
        let request = self.request(Operation::List, within);
        let answer = self.run(request, cancel, &|_| {}).await;
        if cancel.is_cancelled() {
            // The list may have come in just before the Ctrl-C was seen: say which.
            let when = match answer {
                Ok(Event::Deployments { .. }) => "after",
                _ => "before",
            };
            return Err(Interrupted(format!(
                "interrupted {when} the deployments were listed; nothing was changed"
            ))
            .into());
        }
        match answer? {
            Event::Deployments { deployments } => Ok(deployments),
            Event::Error { error } => Err(anyhow::Error::new(error)
                .context(format!("cannot list the deployments at {}", self.api_url))),
            other => anyhow::bail!("unexpected answer to a list: {other:?}"),
        }
    }
}
