//! `spark-cleanup`: deletes the interactive Spark sessions (LRS of type `spark_app`) so the app
//! does not reconnect to stale sessions after a restart, and waits until they are gone.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use kube::ResourceExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, SparkCleanupArgs};
use crate::cluster::list::ServedResource;
use crate::cluster::objects::{self, Deleted, MAX_IN_FLIGHT, Persist};
use crate::cluster::{Cluster, ClusterError};
use crate::env::Env;
use crate::exit::Exit;
use crate::object::{Object, SPARK_TYPE, TYPE_LABEL};
use crate::poll::{self, Waited};
use crate::printer::{self, Consent, Printer, Render};

use super::Finished;

/// How often the remaining objects are listed while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CleanupResult {
    /// --dry-run: it would be deleted.
    WouldDelete,
    /// Gone.
    Deleted,
    /// Deletion accepted, finalizers still hold it (--no-wait).
    Deleting,
    /// Still there when --timeout passed.
    TimedOut,
    Failed,
    /// Ctrl-C came before its deletion was answered: it may or may not have been sent.
    Interrupted,
}

impl CleanupResult {
    fn as_str(self) -> &'static str {
        match self {
            CleanupResult::WouldDelete => "would-delete",
            CleanupResult::Deleted => "deleted",
            CleanupResult::Deleting => "deleting",
            CleanupResult::TimedOut => "timed-out",
            CleanupResult::Failed => "failed",
            CleanupResult::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupItem {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub result: CleanupResult,
    /// Finalizers that still hold the object (deleting, timed-out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupSummary {
    /// Spark sessions found; `total` like every command's summary.
    #[serde(rename = "total")]
    pub found: usize,
    pub deleted: usize,
    pub deleting: usize,
    pub timed_out: usize,
    pub failed: usize,
    /// Not deleted: the run was interrupted first.
    pub interrupted: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupOutcome {
    pub selector: String,
    /// `null`: all namespaces.
    pub namespace: Option<String>,
    pub dry_run: bool,
    pub waited: bool,
    pub timeout_seconds: f64,
    pub summary: CleanupSummary,
    pub items: Vec<CleanupItem>,
}

impl Render for CleanupOutcome {
    fn render(&self) -> String {
        let scope = match &self.namespace {
            Some(ns) => format!("namespace {ns}"),
            None => "all namespaces".to_string(),
        };
        if self.items.is_empty() {
            return format!("No Spark sessions (LRS {}) in {scope}.\n", self.selector);
        }
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|item| {
                let detail = match (&item.message, item.finalizers.is_empty()) {
                    (Some(message), _) => message.clone(),
                    (None, false) => format!("held by finalizers {}", item.finalizers.join(", ")),
                    (None, true) => String::new(),
                };
                vec![
                    item.namespace.clone(),
                    item.name.clone(),
                    item.result.as_str().to_string(),
                    detail,
                ]
            })
            .collect();
        let mut text = printer::table(&["NAMESPACE", "NAME", "RESULT", "DETAIL"], &rows);
        let s = &self.summary;
        if self.dry_run {
            text.push_str(&format!(
                "\nDRY RUN: {} Spark sessions in {scope} would be deleted; nothing was changed.\n",
                s.found
            ));
        } else {
            text.push_str(&format!(
                "\n{}{} Spark sessions in {scope}: {} deleted, {} still deleting, {} not gone \
                 after {}, {} failed{}.\n",
                if s.interrupted > 0 {
                    "INTERRUPTED: "
                } else {
                    ""
                },
                s.found,
                s.deleted,
                s.deleting,
                s.timed_out,
                crate::duration::format(Duration::from_secs_f64(self.timeout_seconds)),
                s.failed,
                if s.interrupted > 0 {
                    format!(", {} not deleted (interrupted)", s.interrupted)
                } else {
                    String::new()
                }
            ));
        }
        text
    }
}

/// What one cleanup does (the flags of `spark-cleanup`, or `prepare`'s choice).
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    pub dry_run: bool,
    /// Wait until the deleted objects are gone.
    pub wait: bool,
    pub timeout: Duration,
}

pub async fn run(
    global: &GlobalArgs,
    args: &SparkCleanupArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (cluster, resource) = super::connect_to_lrs(global, env, args.resource.as_ref()).await?;
    let options = CleanupOptions {
        namespace: if args.all_namespaces {
            None
        } else {
            global.namespace.clone()
        },
        dry_run: args.dry_run,
        wait: !args.no_wait,
        timeout: args.timeout,
    };
    let approve = |outcome: &CleanupOutcome| match args.yes {
        true => Ok(()),
        false => confirm(outcome, env, printer),
    };
    let cancel = super::interrupt_token();
    let finished = clean(&cluster, &resource, &options, approve, &cancel, printer).await?;
    super::report(printer, finished)
}

/// Lists the Spark sessions, has `confirm` approve their deletion (unless there are none or
/// it is a dry run), deletes them and waits until they are gone. On `cancel`, what was sent
/// goes on in the cluster; the outcome says what is known.
pub async fn clean(
    cluster: &Cluster,
    resource: &ServedResource,
    options: &CleanupOptions,
    confirm: impl FnOnce(&CleanupOutcome) -> anyhow::Result<()>,
    cancel: &CancellationToken,
    printer: &Printer,
) -> anyhow::Result<Finished<CleanupOutcome>> {
    let namespace = options.namespace.clone();
    let selector = format!("{TYPE_LABEL}={SPARK_TYPE}");
    let found = tokio::select! {
        found = objects::list(cluster, resource, namespace.as_deref(), &selector) => found,
        () = cancel.cancelled() => {
            return Err(crate::exit::Interrupted(
                "interrupted while listing the Spark sessions; nothing was deleted".into(),
            )
            .into());
        }
    }
    .context("cannot list the Spark sessions")?;
    // The server filtered by label; checking again costs nothing and guarantees that no other
    // type is ever deleted, whatever a server or proxy answers.
    let found: Vec<Object> = found
        .into_iter()
        .filter(|o| o.head.lrs_type() == SPARK_TYPE)
        .collect();
    let mut outcome = CleanupOutcome {
        selector: selector.clone(),
        namespace: namespace.clone(),
        dry_run: options.dry_run,
        waited: options.wait && !options.dry_run,
        timeout_seconds: options.timeout.as_secs_f64(),
        summary: CleanupSummary::default(),
        items: found
            .iter()
            .map(|object| CleanupItem {
                namespace: object.head.namespace().unwrap_or_default(),
                name: object.head.name_any(),
                uid: object.head.uid().unwrap_or_default(),
                result: CleanupResult::WouldDelete,
                finalizers: Vec::new(),
                message: None,
            })
            .collect(),
    };
    if found.is_empty() || options.dry_run {
        outcome.summary.found = outcome.items.len();
        return Ok(Finished::with(outcome, Exit::Success));
    }
    confirm(&outcome)?;

    let mut answers = Vec::new();
    let deleted = tokio::select! {
        () = delete_all(cluster, resource, &outcome.items, &mut answers, printer) => true,
        () = cancel.cancelled() => false,
    };
    record_answers(&mut outcome.items, answers);
    let waited = if deleted && outcome.waited {
        tokio::select! {
            result = wait_until_gone(
                cluster,
                resource,
                namespace.as_deref(),
                &selector,
                options.timeout,
                &mut outcome.items,
                printer,
            ) => Some(result),
            () = cancel.cancelled() => None,
        }
    } else {
        Some(Ok(()))
    };
    outcome.summary = summarize(&outcome.items);
    match waited {
        Some(Ok(())) if deleted => {}
        Some(Err(err)) => return Err(anyhow::Error::new(err).context("cannot watch the deletions")),
        _ => {
            for item in outcome
                .items
                .iter_mut()
                .filter(|i| i.result == CleanupResult::WouldDelete)
            {
                item.result = CleanupResult::Interrupted;
                item.message = Some("interrupted before its deletion was answered".into());
            }
            outcome.summary = summarize(&outcome.items);
            return Ok(Finished {
                outcome,
                exit: Exit::Interrupted,
                error: Some(anyhow::anyhow!(
                    "interrupted; deletions already sent go on in the cluster: run spark-cleanup \
                     again to finish"
                )),
            });
        }
    }
    let failures = outcome.summary.failed + outcome.summary.timed_out;
    let exit = if failures > 0 {
        Exit::Failure
    } else {
        Exit::Success
    };
    Ok(Finished::with(outcome, exit))
}

/// Shows what goes and asks; `--yes` is required when no one can answer.
fn confirm(outcome: &CleanupOutcome, env: &Env, printer: &Printer) -> anyhow::Result<()> {
    let count = outcome.items.len();
    let consent = Consent {
        what: format!("delete {count} Spark sessions"),
        hint: "pass --yes to delete without being asked; --dry-run lists them",
        declined: "nothing deleted: the deletion was not confirmed",
    };
    printer.consent(env.stdin_is_terminal, consent, || {
        let rows: Vec<Vec<String>> = outcome
            .items
            .iter()
            .map(|item| vec![item.namespace.clone(), item.name.clone()])
            .collect();
        Ok(format!(
            "{}Delete these {count} Spark sessions?",
            printer::table(&["NAMESPACE", "NAME"], &rows)
        ))
    })
}

/// Sends the deletions, several at a time, and collects each answer as it comes (into
/// `answers`, so that what was answered is known even when the wait is abandoned).
async fn delete_all(
    cluster: &Cluster,
    resource: &ServedResource,
    items: &[CleanupItem],
    answers: &mut Vec<(usize, Result<Deleted, ClusterError>)>,
    printer: &Printer,
) {
    let progress = printer.progress("deleting Spark sessions");
    progress.set_total(items.len() as u64);
    let mut stream = futures::stream::iter(items.iter().enumerate())
        .map(|(index, item)| async move {
            let answer = objects::delete(
                cluster,
                resource,
                &item.namespace,
                &item.name,
                &item.uid,
                Persist::Yes,
            )
            .await;
            (index, answer)
        })
        .buffer_unordered(MAX_IN_FLIGHT);
    while let Some(answer) = stream.next().await {
        answers.push(answer);
        progress.inc();
    }
    progress.finish();
}

/// Records what each deletion answered.
fn record_answers(items: &mut [CleanupItem], answers: Vec<(usize, Result<Deleted, ClusterError>)>) {
    for (index, answer) in answers {
        let item = &mut items[index];
        match answer {
            Ok(Deleted::Gone) => item.result = CleanupResult::Deleted,
            Ok(Deleted::AlreadyGone) => {
                item.result = CleanupResult::Deleted;
                item.message = Some("already gone".into());
            }
            Ok(Deleted::Pending { finalizers }) => {
                item.result = CleanupResult::Deleting;
                item.finalizers = finalizers;
            }
            Err(ClusterError::Api { code: 409, .. }) => {
                item.result = CleanupResult::Failed;
                item.message = Some(
                    "replaced by a new object of the same name since it was listed; not deleted"
                        .into(),
                );
            }
            Err(err) => {
                item.result = CleanupResult::Failed;
                item.message = Some(match err.hint() {
                    Some(hint) => format!("{err} ({hint})"),
                    None => err.to_string(),
                });
            }
        }
    }
}

/// Lists the remaining sessions until every deleting one is gone or `timeout` passes; those
/// left are timed out, with the finalizers that hold them.
async fn wait_until_gone(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    selector: &str,
    timeout: Duration,
    items: &mut [CleanupItem],
    printer: &Printer,
) -> Result<(), ClusterError> {
    let waiting = items
        .iter()
        .filter(|i| i.result == CleanupResult::Deleting)
        .count();
    if waiting == 0 {
        return Ok(());
    }
    let progress = printer.progress("waiting for the sessions to go");
    progress.set_total(waiting as u64);
    let waited = poll::until_deadline(
        timeout,
        POLL_INTERVAL,
        async || -> Result<bool, ClusterError> {
            let remaining = objects::list(cluster, resource, namespace, selector).await?;
            let mut still = 0;
            for item in items
                .iter_mut()
                .filter(|i| i.result == CleanupResult::Deleting)
            {
                match remaining
                    .iter()
                    .find(|o| o.head.uid().unwrap_or_default() == item.uid)
                {
                    Some(object) => {
                        item.finalizers = object.head.finalizers().to_vec();
                        still += 1;
                    }
                    None => {
                        item.result = CleanupResult::Deleted;
                        item.finalizers.clear();
                        progress.inc();
                    }
                }
            }
            Ok(still == 0)
        },
    )
    .await?;
    if waited == Waited::TimedOut {
        for item in items
            .iter_mut()
            .filter(|i| i.result == CleanupResult::Deleting)
        {
            item.result = CleanupResult::TimedOut;
        }
    }
    progress.finish();
    Ok(())
}

fn summarize(items: &[CleanupItem]) -> CleanupSummary {
    let mut summary = CleanupSummary {
        found: items.len(),
        ..CleanupSummary::default()
    };
    for item in items {
        match item.result {
            CleanupResult::Deleted => summary.deleted += 1,
            CleanupResult::Deleting => summary.deleting += 1,
            CleanupResult::TimedOut => summary.timed_out += 1,
            CleanupResult::Failed => summary.failed += 1,
            CleanupResult::Interrupted => summary.interrupted += 1,
            CleanupResult::WouldDelete => {}
        }
    }
    summary
}
