//! The bulk engine: runs a [`Request`] (the same code in the helper and, with `--via local`, in
//! the plugin), reporting progress as protocol [`Event`]s.
//!
//! A change works on at most `concurrency` deployments at a time (the bound of
//! `buffer_unordered`: a deployment holds its slot from its first request until it is done, so
//! neither requests nor, with `--wait`, running status jobs can exceed it). Each deployment is
//! asked once; a 409 (another change is running) is waited out and the request repeated; a 422
//! is believed only once a GET confirms the deployment already has the status. Stopping (SIGINT,
//! or the overall timeout) lets requests already sent finish and starts nothing new.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::api::{
    ApiError, ClientOptions, DataRobotClient, ErrorKind, JobState, StatusRequest, TargetStatus,
};
use crate::protocol::{
    ChangeReport, ChangeRequest, Event, ItemReport, Operation, Outcome, PROTOCOL_VERSION,
    PlannedChange, Request, StopReason, WireError,
};

/// The default number of deployments changed at once.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The most deployments ever changed at once, whatever is asked.
pub const MAX_CONCURRENCY: usize = 256;
/// The first wait before polling a status job, and the longest between two polls.
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(5);

/// Where progress goes: one call per event, from the engine's task.
pub type Emit<'a> = &'a (dyn Fn(Event) + Sync);

/// Runs one request to its end, emitting progress and then exactly one final event.
pub async fn execute(request: Request, cancel: &CancellationToken, emit: Emit<'_>) {
    if request.protocol_version != PROTOCOL_VERSION {
        emit(Event::Error {
            error: WireError {
                kind: ErrorKind::Protocol,
                message: format!(
                    "the request speaks protocol {}, this helper {PROTOCOL_VERSION}",
                    request.protocol_version
                ),
                hint: crate::api::hint_for(ErrorKind::Protocol),
            },
        });
        return;
    }
    let options = ClientOptions {
        request_timeout: Duration::try_from_secs_f64(request.request_timeout_seconds)
            .ok()
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(3600)),
        tls: request.tls.clone(),
        ..ClientOptions::default()
    };
    let client = match DataRobotClient::new(request.api_url.clone(), request.token, &options) {
        Ok(client) => client,
        Err(err) => {
            emit(Event::Error {
                error: WireError::from(&err),
            });
            return;
        }
    };
    // Zero means no bound, as for a change.
    let list_timeout = request
        .list_timeout_seconds
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .filter(|limit| !limit.is_zero());
    let last = match request.operation {
        Operation::List => {
            let listed = tokio::select! {
                listed = list_within(&client, list_timeout) => Some(listed),
                () = cancel.cancelled() => None,
            };
            match listed {
                Some(Ok(deployments)) => Event::Deployments { deployments },
                Some(Err(error)) => Event::Error { error },
                // Nothing was changed: a list can stop anywhere.
                None => Event::Error {
                    error: WireError {
                        kind: ErrorKind::Interrupted,
                        message: "interrupted before the deployments were listed".into(),
                        hint: None,
                    },
                },
            }
        }
        Operation::Change(change_request) => Event::Report {
            report: change(&client, &change_request, cancel, emit).await,
        },
    };
    emit(last);
}

/// Runs one request to its end and returns its final event; progress events go to `progress`
/// as they come. What the helper's own commands and the plugin's `--via local` run.
pub async fn final_event(
    request: Request,
    cancel: &CancellationToken,
    progress: &(dyn Fn(&Event) + Sync),
) -> Event {
    let last = std::sync::Mutex::new(None);
    execute(request, cancel, &|event| {
        if event.is_final() {
            *last.lock().unwrap() = Some(event);
        } else {
            progress(&event);
        }
    })
    .await;
    last.into_inner()
        .unwrap()
        .expect("execute always ends with a final event")
}

/// Checks that the URL is a DataRobot API that accepts the token, then lists the deployments.
pub async fn list(client: &DataRobotClient) -> Result<Vec<crate::api::Deployment>, ApiError> {
    let version = client.version().await?;
    log::info!(
        "DataRobot API {} ({}) at {}",
        version.version_string,
        version
            .released_version
            .as_deref()
            .unwrap_or("release unknown"),
        client.api()
    );
    let deployments = client.list_deployments().await?;
    log::info!("{} deployments visible", deployments.len());
    Ok(deployments)
}

/// [`list`], given up after `limit` (the overall timeout of a change, which listing is part of).
async fn list_within(
    client: &DataRobotClient,
    limit: Option<Duration>,
) -> Result<Vec<crate::api::Deployment>, WireError> {
    let Some(limit) = limit else {
        return list(client).await.map_err(|err| WireError::from(&err));
    };
    match tokio::time::timeout(limit, list(client)).await {
        Ok(listed) => listed.map_err(|err| WireError::from(&err)),
        Err(_) => Err(WireError {
            kind: ErrorKind::Timeout,
            message: format!(
                "the deployments were not listed within the overall timeout of {}s",
                limit.as_secs_f64()
            ),
            hint: Some(
                "nothing was changed; raise --timeout, or check with `-v=6` what the API \
                 answers"
                    .into(),
            ),
        }),
    }
}

/// Why the run is stopping, set once by whoever stops it first.
struct Stop {
    token: CancellationToken,
    reason: OnceLock<StopReason>,
}

impl Stop {
    fn reason(&self) -> Option<StopReason> {
        self.token
            .is_cancelled()
            .then(|| *self.reason.get().unwrap_or(&StopReason::Interrupted))
    }

    /// Sleeps, unless the run stops first (`false` then).
    async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.token.cancelled() => false,
        }
    }
}

/// Brings every planned deployment to the target status, `concurrency` at a time.
pub async fn change(
    client: &DataRobotClient,
    request: &ChangeRequest,
    cancel: &CancellationToken,
    emit: Emit<'_>,
) -> ChangeReport {
    let started = Instant::now();
    let stop = Stop {
        token: cancel.child_token(),
        reason: OnceLock::new(),
    };
    let client = client.stopping_with(stop.token.clone());
    let timeout = Duration::try_from_secs_f64(request.timeout_seconds)
        .ok()
        .filter(|t| !t.is_zero())
        .unwrap_or(Duration::MAX);
    let concurrency = request.concurrency.clamp(1, MAX_CONCURRENCY);
    let work = futures::stream::iter(request.deployments.iter().enumerate())
        .map(|(index, planned)| {
            let (client, stop) = (&client, &stop);
            async move {
                let item = change_one(client, planned, request, stop, emit).await;
                (index, item)
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>();
    let watch = async {
        tokio::select! {
            _ = tokio::time::sleep(timeout) => {
                let _ = stop.reason.set(StopReason::TimedOut);
                log::warn!("the overall timeout of {}s has passed: stopping", timeout.as_secs_f64());
            }
            _ = cancel.cancelled() => {
                let _ = stop.reason.set(StopReason::Interrupted);
                log::warn!("interrupted: finishing the requests in flight, starting no more");
            }
        }
        stop.token.cancel();
        std::future::pending::<()>().await
    };
    let mut items = tokio::select! {
        items = work => items,
        () = watch => unreachable!("the watcher never ends"),
    };
    items.sort_by_key(|(index, _)| *index);
    ChangeReport {
        target: request.target,
        wait: request.wait,
        items: items.into_iter().map(|(_, item)| item).collect(),
        stopped: stop.reason(),
        max_in_flight: client.max_in_flight(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

async fn change_one(
    client: &DataRobotClient,
    planned: &PlannedChange,
    request: &ChangeRequest,
    stop: &Stop,
    emit: Emit<'_>,
) -> ItemReport {
    let item = if let Some(reason) = stop.reason() {
        ItemReport::new(planned, Outcome::NotAttempted).message(stopped_before(reason))
    } else {
        emit(Event::Started {
            id: planned.id.clone(),
        });
        drive(client, planned, request, stop).await
    };
    log::debug!(
        "deployment {}: {}{}",
        planned.id,
        item.outcome.as_str(),
        item.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    emit(Event::Finished { item: item.clone() });
    item
}

fn stopped_before(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Interrupted => "interrupted before it was tried",
        StopReason::TimedOut => "the overall timeout passed before it was tried",
    }
}

/// Asks for the change and, with `wait`, follows it to its end.
async fn drive(
    client: &DataRobotClient,
    planned: &PlannedChange,
    request: &ChangeRequest,
    stop: &Stop,
) -> ItemReport {
    let target = request.target;
    let mut delay = FIRST_POLL;
    // Whether the deployment may already have been changed by us (a lost attempt, a 409 that
    // may have been our own change).
    let mut maybe_ours = false;
    loop {
        let answer = client.request_status(&planned.id, target).await;
        let (answer, lost) = match answer {
            Ok(answer) => answer,
            Err(ApiError::Interrupted { after_lost_attempt }) => {
                let reason = stop.reason().unwrap_or(StopReason::Interrupted);
                return if after_lost_attempt || maybe_ours {
                    ItemReport::new(planned, Outcome::Failed).message(format!(
                        "{}: the change may or may not have been made; a re-run is safe",
                        stop_text(reason)
                    ))
                } else {
                    ItemReport::new(planned, Outcome::NotAttempted).message(stopped_before(reason))
                };
            }
            Err(err) => return ItemReport::failed(planned, &err),
        };
        maybe_ours |= lost;
        match answer {
            StatusRequest::Accepted { job } => {
                if !request.wait {
                    return ItemReport::new(planned, Outcome::Requested)
                        .message("accepted by the API; not waited for (--wait=false)");
                }
                return follow(client, planned, target, &job, stop).await;
            }
            StatusRequest::Refused { message } => {
                // 422: most likely "already <status>"; a GET tells for sure.
                return match client.deployment(&planned.id).await {
                    Ok(now) if target.is(now.status.as_deref()) => {
                        if maybe_ours {
                            ItemReport::new(planned, Outcome::Changed)
                                .after(target.as_str())
                                .message("confirmed after a retry")
                        } else {
                            ItemReport::new(planned, Outcome::Unchanged)
                                .after(target.as_str())
                                .message(format!("already {target}"))
                        }
                    }
                    Ok(now) => {
                        let mut item = ItemReport::new(planned, Outcome::Failed)
                            .message(format!("the API refused the change (422): {message}"));
                        item.after = now.status;
                        item.error_kind = Some(ErrorKind::Http);
                        item
                    }
                    Err(err) => ItemReport::failed(planned, &err),
                };
            }
            StatusRequest::Busy { message } => {
                // 409: a change of this deployment is running (possibly our own lost attempt):
                // wait, then look, then decide.
                log::info!("deployment {}: {message}; waiting", planned.id);
                if !stop.sleep(delay).await {
                    return ItemReport::new(planned, Outcome::Failed).message(format!(
                        "{} while another status change of it was running",
                        stop_text(stop.reason().unwrap_or(StopReason::Interrupted))
                    ));
                }
                delay = (delay.mul_f64(1.5)).min(MAX_POLL);
                match client.deployment(&planned.id).await {
                    Ok(now) if target.is(now.status.as_deref()) => {
                        return ItemReport::new(planned, Outcome::Unchanged)
                            .after(target.as_str())
                            .message(format!("another change made it {target}"));
                    }
                    Ok(_) => continue,
                    Err(err) => return ItemReport::failed(planned, &err),
                }
            }
        }
    }
}

fn stop_text(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Interrupted => "interrupted",
        StopReason::TimedOut => "the overall timeout passed",
    }
}

/// Polls the status job until it ends or the run stops.
async fn follow(
    client: &DataRobotClient,
    planned: &PlannedChange,
    target: TargetStatus,
    job: &reqwest::Url,
    stop: &Stop,
) -> ItemReport {
    let mut delay = FIRST_POLL;
    loop {
        if !stop.sleep(delay).await {
            return match stop.reason().unwrap_or(StopReason::Interrupted) {
                StopReason::Interrupted => ItemReport::new(planned, Outcome::Requested)
                    .message("accepted by the API; interrupted before it was confirmed"),
                StopReason::TimedOut => {
                    let mut item = ItemReport::new(planned, Outcome::Failed).message(
                        "accepted by the API, but not done when the overall timeout passed; it \
                         may still complete (a re-run is safe)",
                    );
                    item.error_kind = Some(ErrorKind::Timeout);
                    item
                }
            };
        }
        delay = (delay.mul_f64(1.5)).min(MAX_POLL);
        match client.job(job).await {
            Ok(JobState::Done) => {
                return ItemReport::new(planned, Outcome::Changed).after(target.as_str());
            }
            Ok(JobState::Failed(message)) => {
                let mut item = ItemReport::new(planned, Outcome::Failed)
                    .message(format!("the status job failed: {message}"));
                item.error_kind = Some(ErrorKind::Http);
                return item;
            }
            Ok(JobState::Running(state)) => {
                log::trace!("deployment {}: status job {state}", planned.id);
            }
            Err(ApiError::Interrupted { .. }) => {
                return ItemReport::new(planned, Outcome::Requested)
                    .message("accepted by the API; stopped before it was confirmed");
            }
            Err(err) => return ItemReport::failed(planned, &err),
        }
    }
}
