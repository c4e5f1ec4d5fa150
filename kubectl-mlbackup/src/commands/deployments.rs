//! `deployments list|deactivate|reactivate`: the DataRobot deployments, through the helper's
//! engine (`mlbackup_helper`): list, record the snapshot before the first change, plan, change,
//! report. `--via local` runs the engine in this process; the requests and events are those of
//! the wire protocol, so running it in the app pod changes only where they travel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use mlbackup_helper::api::Deployment;
use mlbackup_helper::plan::{self, Action, StateFile};
use mlbackup_helper::protocol::{ChangeRequest, Event, ItemReport, Operation, Outcome, StopReason};
use mlbackup_helper::snapshot::SNAPSHOT_FILE;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{ChangeArgs, DeploymentsCommand, DeploymentsListArgs, GlobalArgs, ReactivateArgs};
use crate::datarobot::Api;
use crate::datarobot::in_pod::InPodError;
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::folder;
use crate::printer::{self, Consent, Printer, Render};

use super::Finished;

pub async fn run(
    global: &GlobalArgs,
    command: &DeploymentsCommand,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    match command {
        DeploymentsCommand::List(args) => list(global, args, env, printer).await,
        DeploymentsCommand::Deactivate(args) => {
            change(
                global,
                Action::Deactivate,
                &args.change,
                args.yes,
                None,
                env,
                printer,
            )
            .await
        }
        DeploymentsCommand::Reactivate(args) => {
            change(
                global,
                Action::Reactivate,
                &args.change,
                args.yes,
                Some(args),
                env,
                printer,
            )
            .await
        }
    }
}

/// The deployments visible to the token's user.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOutcome {
    pub api_url: String,
    pub deployments: Vec<Deployment>,
}

impl Render for ListOutcome {
    fn render(&self) -> String {
        if self.deployments.is_empty() {
            return format!("No deployments visible at {}\n", self.api_url);
        }
        let rows: Vec<Vec<String>> = self
            .deployments
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.label.clone(),
                    d.status.clone().unwrap_or_else(|| "<none>".into()),
                ]
            })
            .collect();
        printer::table(&["ID", "LABEL", "STATUS"], &rows)
    }
}

/// What a deactivation or reactivation did, deployment by deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOutcome {
    pub action: Action,
    pub api_url: String,
    /// Where the snapshot was written (deactivate) or read (reactivate).
    pub snapshot: Option<PathBuf>,
    pub dry_run: bool,
    pub wait: bool,
    /// The planned deployments, then those named with --only or recorded but left out.
    pub deployments: Vec<ItemReport>,
    /// How many deployments ended with each outcome.
    pub summary: ChangeSummary,
    /// Visible deployments the plan did not touch (inactive ones for a deactivation...).
    pub left_alone: usize,
    pub stopped: Option<StopReason>,
    pub seconds: f64,
    /// The most API requests in flight at once.
    pub max_in_flight: usize,
}

/// Every outcome a deployment can end with, in the order they are shown.
const OUTCOMES: [Outcome; 9] = [
    Outcome::Changed,
    Outcome::Requested,
    Outcome::Unchanged,
    Outcome::Skipped,
    Outcome::WouldChange,
    Outcome::Missing,
    Outcome::Failed,
    Outcome::NotAttempted,
    Outcome::Unknown,
];

/// How many deployments ended with each outcome. In JSON the shape of every command's
/// `summary`: `total`, then one count per outcome, zeros included.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChangeSummary {
    counts: BTreeMap<Outcome, usize>,
}

impl ChangeSummary {
    pub fn of<'a>(items: impl IntoIterator<Item = &'a ItemReport>) -> ChangeSummary {
        let mut counts: BTreeMap<Outcome, usize> = OUTCOMES.iter().map(|o| (*o, 0)).collect();
        for item in items {
            *counts.entry(item.outcome).or_insert(0) += 1;
        }
        ChangeSummary { counts }
    }

    /// How many ended with `outcome` (`Some` for every outcome).
    pub fn get(&self, outcome: &Outcome) -> Option<&usize> {
        self.counts.get(outcome).or(Some(&0))
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }

    /// The outcomes that happened, with their counts, in [`OUTCOMES`] order.
    fn present(&self) -> impl Iterator<Item = (Outcome, usize)> + '_ {
        self.counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(outcome, n)| (*outcome, *n))
    }
}

impl Serialize for ChangeSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(OUTCOMES.len() + 1))?;
        map.serialize_entry("total", &self.total())?;
        for outcome in OUTCOMES {
            map.serialize_entry(&outcome, self.get(&outcome).unwrap_or(&0))?;
        }
        map.end()
    }
}

impl ChangeOutcome {
    fn count(&self, outcome: Outcome) -> usize {
        self.summary.get(&outcome).copied().unwrap_or(0)
    }

    fn unfinished(&self) -> usize {
        self.count(Outcome::Failed)
            + self.count(Outcome::NotAttempted)
            + self.count(Outcome::Unknown)
    }
}

impl Render for ChangeOutcome {
    fn render(&self) -> String {
        let mut text = String::new();
        if !self.deployments.is_empty() {
            let rows: Vec<Vec<String>> = self
                .deployments
                .iter()
                .map(|item| {
                    vec![
                        item.id.clone(),
                        item.label.clone(),
                        item.before.clone().unwrap_or_else(|| "-".into()),
                        item.after.clone().unwrap_or_else(|| "-".into()),
                        item.outcome.as_str().to_string(),
                        item.message.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            text.push_str(&printer::table(
                &["ID", "LABEL", "BEFORE", "AFTER", "OUTCOME", "MESSAGE"],
                &rows,
            ));
        }
        let (verb, target) = match self.action {
            Action::Deactivate => ("deactivated", "inactive"),
            Action::Reactivate => ("reactivated", "active"),
        };
        let counts: Vec<String> = self
            .summary
            .present()
            .map(|(outcome, n)| format!("{n} {}", outcome.as_str()))
            .collect();
        let counts = if counts.is_empty() {
            "nothing to do".to_string()
        } else {
            counts.join(", ")
        };
        if self.dry_run {
            text.push_str(&format!(
                "Dry run: {} deployments would be {verb} ({counts}); {} others left alone. \
                 Nothing was changed or written.\n",
                self.count(Outcome::WouldChange),
                self.left_alone
            ));
        } else {
            text.push_str(&format!(
                "{}: {counts}; {} others left alone; {:.1}s.\n",
                printer::capitalised(verb),
                self.left_alone,
                self.seconds
            ));
        }
        if let Some(path) = &self.snapshot {
            let how = match self.action {
                Action::Deactivate if self.dry_run => "would be recorded in",
                Action::Deactivate => "recorded in",
                Action::Reactivate => "read from",
            };
            text.push_str(&format!("Deployment states {how} {}\n", path.display()));
        }
        if self.count(Outcome::Requested) > 0 && !self.wait {
            text.push_str(&format!(
                "{} changes were accepted by the API but not waited for: check with \
                 `kubectl mlbackup deployments list` that they are {target}.\n",
                self.count(Outcome::Requested)
            ));
        }
        match self.stopped {
            Some(StopReason::Interrupted) => text.push_str(
                "INTERRUPTED: the requests in flight were finished, the rest not attempted. A \
                 re-run is safe.\n",
            ),
            Some(StopReason::TimedOut) => text.push_str(
                "TIMED OUT: the rest was not attempted (raise --timeout). A re-run is safe.\n",
            ),
            None if self.unfinished() > 0 => text.push_str(&format!(
                "{} deployments were not {verb} (see MESSAGE). A re-run is safe: it changes only \
                 what is left to change.\n",
                self.unfinished()
            )),
            None => {}
        }
        text
    }
}

/// Some deployments were not brought to their target status.
#[derive(Debug, thiserror::Error)]
#[error("{unfinished} of {total} deployments were not {verb}; a re-run is safe")]
pub struct Incomplete {
    pub unfinished: usize,
    pub total: usize,
    pub verb: &'static str,
    pub hint: Option<String>,
}

async fn list(
    global: &GlobalArgs,
    args: &DeploymentsListArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let api = super::connect_to_datarobot(global, &args.datarobot, None, env, printer).await?;
    let cancel = super::interrupt_token();
    let deployments = api.list(&cancel, None).await?;
    printer.data(&ListOutcome {
        api_url: api.api_url.to_string(),
        deployments,
    })?;
    Ok(Exit::Success)
}

/// Where the snapshot lives: `deployments.json` of the backup, or the state file; and a
/// bucket's backup, mirrored, that it is uploaded to.
async fn state_path(
    args: &ChangeArgs,
    env: &Env,
) -> anyhow::Result<(Option<PathBuf>, Option<std::sync::Arc<crate::store::Found>>)> {
    if let Some(path) = &args.state {
        return Ok((Some(path.clone()), None));
    }
    let Some(name) = &args.backup else {
        return Ok((None, None));
    };
    let store = crate::store::Store::open(args.backups.dir.as_deref(), false, env)?;
    let found = store
        .find(name, crate::store::Read::Records)
        .await
        .with_context(|| format!("cannot use the backup `{name}` for the deployment snapshot"))?;
    let path = found.backup.dir.join(SNAPSHOT_FILE);
    // A bucket's backup is read into a private mirror: the snapshot written there is uploaded.
    let bucket = found.in_bucket().then(|| std::sync::Arc::new(found));
    Ok((Some(path), bucket))
}

/// What one deactivation or reactivation does (the flags of `deployments deactivate|reactivate`,
/// or `prepare`'s and `recover`'s choice).
#[derive(Debug, Clone)]
pub struct ChangeOptions {
    pub action: Action,
    /// Where the snapshot is written (deactivate) or read (reactivate); `None` only for a dry
    /// run of a deactivation and for `--all`.
    pub state: Option<PathBuf>,
    /// The bucket's backup whose mirror holds `state`: the snapshot is uploaded there before
    /// the first change, so it is kept in the location, not only on this machine.
    pub snapshot_to: Option<std::sync::Arc<crate::store::Found>>,
    /// Reactivate every inactive deployment (asks unless `yes`).
    pub all: bool,
    /// Do not ask: before `--all`, or before deactivating more than the `only` ids.
    pub yes: bool,
    pub only: Vec<String>,
    pub dry_run: bool,
    pub concurrency: usize,
    pub wait: bool,
    pub timeout: std::time::Duration,
    /// Whether a question can be asked (see `yes`).
    pub stdin_is_terminal: bool,
}

async fn change(
    global: &GlobalArgs,
    action: Action,
    args: &ChangeArgs,
    yes: bool,
    reactivate: Option<&ReactivateArgs>,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let all = reactivate.is_some_and(|r| r.all);
    let (state, snapshot_to) = state_path(args, env).await?;
    if state.is_none() && !all && !(action == Action::Deactivate && args.dry_run) {
        return Err(UsageError {
            message: format!(
                "{} needs to know where the deployment snapshot is",
                action.as_str()
            ),
            hint: match action {
                Action::Deactivate => "pass --backup NAME (the backup taken before the upgrade) \
                                       or --state FILE: reactivate reads it to bring back exactly \
                                       the deployments that were active"
                    .into(),
                Action::Reactivate => "pass the --backup or --state given to deactivate, or \
                                       --all to reactivate every inactive deployment"
                    .into(),
            },
        }
        .into());
    }
    let options = ChangeOptions {
        action,
        state,
        snapshot_to,
        all,
        yes,
        only: args.only.clone(),
        dry_run: args.dry_run,
        concurrency: usize::from(args.concurrency),
        wait: args.wait,
        timeout: args.timeout,
        stdin_is_terminal: env.stdin_is_terminal,
    };
    let api = super::connect_to_datarobot(global, &args.datarobot, None, env, printer).await?;
    let cancel = super::interrupt_token();
    let finished = change_through(&api, &options, &cancel, printer).await?;
    super::report(printer, finished)
}

/// Lists, plans, records the snapshot and changes, through `api`. An interruption before the
/// list ends without an outcome (an error); after it, the outcome says what was done and the
/// rest is not attempted.
pub async fn change_through(
    api: &Api,
    options: &ChangeOptions,
    cancel: &CancellationToken,
    printer: &Printer,
) -> anyhow::Result<Finished<ChangeOutcome>> {
    let started = Instant::now();
    let action = options.action;
    // `--timeout` covers the whole change, the list before it included.
    let deployments = api.list(cancel, Some(options.timeout)).await?;
    // Taking every deployment offline is asked first, before the snapshot is written: more
    // than the ids named with --only would change.
    if action == Action::Deactivate && !options.dry_run && !options.yes {
        let planned = plan::plan(
            action,
            &deployments,
            plan::Selection::ActiveNow,
            &options.only,
        )
        .with_context(|| format!("cannot plan the {}", action.as_str()))?;
        if planned
            .changes
            .iter()
            .any(|change| !options.only.contains(&change.id))
        {
            confirm_deactivation(planned.changes.len(), options.stdin_is_terminal, printer)?;
        }
    }
    let prepared = plan::prepare(
        action,
        &deployments,
        options
            .state
            .as_deref()
            .map_or(StateFile::None, StateFile::At),
        options.all,
        &options.only,
        options.dry_run,
        api.api_url.as_url().as_str(),
    )
    .with_context(|| format!("cannot plan the {}", action.as_str()))?;
    let plan = prepared.plan;
    if let (Some(found), Action::Deactivate, false) =
        (&options.snapshot_to, action, options.dry_run)
    {
        found
            .upload(folder::DEPLOYMENTS_FILE)
            .await
            .with_context(|| {
                format!(
                    "cannot store the deployment snapshot in {}: nothing was changed",
                    found.shown.display()
                )
            })?;
    }
    if options.all && !options.dry_run && !plan.changes.is_empty() {
        confirm_all(
            options.yes,
            plan.changes.len(),
            options.stdin_is_terminal,
            printer,
        )?;
    }

    let mut outcome = ChangeOutcome {
        action,
        api_url: api.api_url.to_string(),
        snapshot: options.state.clone(),
        dry_run: options.dry_run,
        wait: options.wait,
        deployments: Vec::new(),
        summary: ChangeSummary::default(),
        left_alone: plan.left_alone,
        stopped: None,
        seconds: 0.0,
        max_in_flight: 0,
    };
    if options.dry_run {
        outcome.deployments = plan
            .changes
            .iter()
            .map(|c| ItemReport::new(c, Outcome::WouldChange).after(plan.target.as_str()))
            .collect();
    } else if !plan.changes.is_empty() {
        let verb = match action {
            Action::Deactivate => "deactivating",
            Action::Reactivate => "reactivating",
        };
        let progress = printer.progress(verb);
        progress.set_total(plan.changes.len() as u64);
        let failures = std::sync::atomic::AtomicUsize::new(0);
        let request_plan = plan.changes.clone();
        let request = ChangeRequest {
            target: plan.target,
            deployments: plan.changes.clone(),
            concurrency: options.concurrency,
            wait: options.wait,
            // What the list left of it; never zero, which the engine reads as "no timeout".
            timeout_seconds: options
                .timeout
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1))
                .as_secs_f64(),
        };
        let request = api.request(Operation::Change(request), None);
        let last = api
            .run(request, cancel, &|event| {
                if let Event::Finished { item } = event {
                    if item.outcome == Outcome::Failed {
                        let failed = failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        progress.set_message(&format!("{verb} ({failed} failed)"));
                    }
                    progress.inc();
                }
            })
            .await;
        progress.finish();
        let report = match last {
            Ok(Event::Report { report }) => report,
            Err(InPodError::Broken { seen, detail, .. }) => {
                let why = format!(
                    "the connection to the helper broke{}: it may or may not have changed it",
                    detail.map(|d| format!(" ({d})")).unwrap_or_default()
                );
                report_from_events(plan.target, &request_plan, &seen, &why, None)
            }
            Err(InPodError::Interrupted { seen, .. }) => report_from_events(
                plan.target,
                &request_plan,
                &seen,
                "interrupted while under way: it may or may not have changed",
                Some(StopReason::Interrupted),
            ),
            Err(err) => return Err(anyhow::Error::new(err)),
            Ok(Event::Error { error }) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("the {} did not run", action.as_str())));
            }
            Ok(other) => anyhow::bail!("unexpected answer to a change: {other:?}"),
        };
        outcome.deployments = report.items;
        outcome.stopped = report.stopped;
        outcome.max_in_flight = report.max_in_flight;
    }
    outcome.deployments.extend(plan.set_aside);
    outcome.summary = ChangeSummary::of(&outcome.deployments);
    outcome.seconds = started.elapsed().as_secs_f64();
    if outcome.stopped == Some(StopReason::Interrupted) {
        return Ok(Finished::with(outcome, Exit::Interrupted));
    }
    let unfinished = outcome.unfinished();
    if unfinished > 0 {
        let hint = outcome
            .deployments
            .iter()
            .filter_map(|i| i.error_kind)
            .find_map(mlbackup_helper::api::hint_for);
        let error = Incomplete {
            unfinished,
            total: outcome.deployments.len(),
            verb: match action {
                Action::Deactivate => "deactivated",
                Action::Reactivate => "reactivated",
            },
            hint,
        };
        return Ok(Finished {
            outcome,
            exit: Exit::Failure,
            error: Some(error.into()),
        });
    }
    Ok(Finished::with(outcome, Exit::Success))
}

/// The report of a change whose final event never came: what finished as reported, the rest
/// `unknown` (the helper may have gone on without us).
fn report_from_events(
    target: mlbackup_helper::api::TargetStatus,
    planned: &[mlbackup_helper::protocol::PlannedChange],
    seen: &[Event],
    why: &str,
    stopped: Option<StopReason>,
) -> mlbackup_helper::protocol::ChangeReport {
    let finished: BTreeMap<&str, &ItemReport> = seen
        .iter()
        .filter_map(|event| match event {
            Event::Finished { item } => Some((item.id.as_str(), item)),
            _ => None,
        })
        .collect();
    let items = planned
        .iter()
        .map(|change| match finished.get(change.id.as_str()) {
            Some(item) => (*item).clone(),
            None => ItemReport::new(change, Outcome::Unknown).message(why),
        })
        .collect::<Vec<_>>();
    mlbackup_helper::protocol::ChangeReport {
        target,
        wait: false,
        items,
        stopped,
        max_in_flight: 0,
        seconds: 0.0,
    }
}

/// `--all` reactivates deployments nobody recorded: a person says yes, or --yes does.
fn confirm_all(
    yes: bool,
    count: usize,
    stdin_is_terminal: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let consent = Consent {
        what: format!("reactivate all {count} inactive deployments"),
        hint: "pass --yes, or reactivate exactly the recorded ones with --backup or --state",
        declined: "nothing reactivated: --all was not confirmed",
    };
    printer.consent(stdin_is_terminal, consent, || {
        Ok(format!(
            "Reactivate all {count} inactive deployments, including those that were inactive \
             before the upgrade?"
        ))
    })
}

/// Deactivating every active deployment stops all predictions: a person says yes, or --yes
/// does.
fn confirm_deactivation(
    count: usize,
    stdin_is_terminal: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    let consent = Consent {
        what: format!("deactivate {count} active deployments"),
        hint: "pass --yes, or name the deployments to deactivate with --only ID",
        declined: "nothing deactivated and nothing recorded: not confirmed",
    };
    printer.consent(stdin_is_terminal, consent, || {
        Ok(format!(
            "Deactivate {count} active deployments? They serve no predictions until reactivated."
        ))
    })
}
