//! `app stop` / `app start`: the vendor's scale-down step. Stop records each app workload's
//! replica count in an annotation and scales it to zero; start scales it back and removes the
//! annotation. The work is [`select`] then [`execute`], which return values (no printing but
//! progress), so `prepare --stop-app` and `recover --start-app` run the same steps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;

use crate::cli::{AppCommand, AppSelectionArgs, AppWaitArgs, GlobalArgs};
use crate::cluster::objects::MAX_IN_FLIGHT;
use crate::cluster::workloads::{self, Workload, WorkloadKind};
use crate::cluster::{Cluster, ClusterError};
use crate::env::Env;
use crate::exit::Exit;
use crate::poll::{self, Waited};
use crate::printer::{self, Consent, Printer, Render};

/// Where `stop` records a workload's replica count, for `start` to bring back.
pub const REPLICAS_ANNOTATION: &str = "mlbackup.datarobot.com/replicas";
/// The app's Helm release `dr`, as older (`release`) and newer (`app.kubernetes.io/instance`)
/// charts label it. A label selector cannot say "or": each is listed on its own.
pub const DEFAULT_SELECTORS: [&str; 2] = ["release=dr", "app.kubernetes.io/instance=dr"];
/// Stopped by name whatever their labels: the PCS connection pooler, so that nothing holds
/// database connections during the backup (the vendor's guide stops it with the app).
pub const DEFAULT_EXTRAS: [&str; 1] = ["pcs-pgpool"];
/// How often the workloads are read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often one workload is read again and re-decided after a 409 Conflict.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Which workloads make up the app.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// Label selectors; a workload matching any of them is selected.
    pub selectors: Vec<String>,
    /// Workloads selected by name (Deployment, else StatefulSet).
    pub extras: Vec<String>,
}

impl Selection {
    pub fn from_args(args: &AppSelectionArgs) -> Self {
        let selectors = match args.selector.as_deref().map(str::trim) {
            Some(selector) if !selector.is_empty() => vec![selector.to_string()],
            _ => DEFAULT_SELECTORS.iter().map(|s| s.to_string()).collect(),
        };
        let defaults = DEFAULT_EXTRAS
            .iter()
            .map(|s| s.to_string())
            .filter(|_| !args.no_extras);
        let mut extras: Vec<String> = Vec::new();
        for name in defaults.chain(args.extras.iter().cloned()) {
            if !extras.contains(&name) {
                extras.push(name);
            }
        }
        Selection { selectors, extras }
    }
}

/// What to do to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Stop,
    Start,
}

/// How to run one action.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub namespace: String,
    pub selection: Selection,
    /// Read only: report what would be done.
    pub dry_run: bool,
    /// Wait at most this long for the pods to follow; `None`: do not wait.
    pub wait: Option<Duration>,
}

/// How a workload came to be selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectedBy {
    Label,
    Name,
}

/// The workloads found, and the extras that do not exist.
#[derive(Debug, Clone)]
pub struct Selected {
    pub workloads: Vec<(Workload, SelectedBy)>,
    pub missing_extras: Vec<String>,
}

/// Finds the app's workloads: every Deployment and StatefulSet matching a selector, then the
/// extras by name. Read only.
pub async fn select(cluster: &Cluster, options: &AppOptions) -> Result<Selected, ClusterError> {
    let mut workloads: Vec<(Workload, SelectedBy)> = Vec::new();
    for kind in WorkloadKind::ALL {
        for selector in &options.selection.selectors {
            for workload in workloads::list(cluster, kind, &options.namespace, selector).await? {
                if !workloads
                    .iter()
                    .any(|(w, _)| w.kind == kind && w.name == workload.name)
                {
                    workloads.push((workload, SelectedBy::Label));
                }
            }
        }
    }
    let mut missing_extras = Vec::new();
    for name in &options.selection.extras {
        if workloads.iter().any(|(w, _)| &w.name == name) {
            continue;
        }
        let mut found = None;
        for kind in WorkloadKind::ALL {
            found = workloads::get(cluster, kind, &options.namespace, name).await?;
            if found.is_some() {
                break;
            }
        }
        match found {
            Some(workload) => workloads.push((workload, SelectedBy::Name)),
            None => missing_extras.push(name.clone()),
        }
    }
    workloads.sort_by(|(a, _), (b, _)| (&a.name, a.kind).cmp(&(&b.name, b.kind)));
    Ok(Selected {
        workloads,
        missing_extras,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppResult {
    /// --dry-run: it would be scaled to zero (its count recorded).
    WouldStop,
    /// Scaled to zero, its count recorded.
    Stopped,
    /// At zero with a recorded count: an earlier stop did it.
    AlreadyStopped,
    /// At zero without a recorded count: nothing to record; start leaves it at zero.
    AlreadyAtZero,
    /// --dry-run: it would be scaled back to its recorded count.
    WouldStart,
    /// Scaled back to its recorded count, the annotation removed.
    Started,
    /// No recorded count: left alone.
    NotStopped,
    /// A named extra that does not exist.
    NotFound,
    /// Scaled, but its pods had not followed when --timeout passed.
    TimedOut,
    Failed,
}

impl AppResult {
    fn as_str(self) -> &'static str {
        match self {
            AppResult::WouldStop => "would-stop",
            AppResult::Stopped => "stopped",
            AppResult::AlreadyStopped => "already-stopped",
            AppResult::AlreadyAtZero => "already-at-zero",
            AppResult::WouldStart => "would-start",
            AppResult::Started => "started",
            AppResult::NotStopped => "not-stopped",
            AppResult::NotFound => "not-found",
            AppResult::TimedOut => "timed-out",
            AppResult::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppItem {
    /// `null` for a named extra that was not found.
    pub kind: Option<WorkloadKind>,
    pub name: String,
    pub selected_by: SelectedBy,
    /// `spec.replicas` when read.
    pub replicas_before: Option<i64>,
    /// `spec.replicas` as written (or as it would be, in a dry run).
    pub replicas_after: Option<i64>,
    /// The count in the annotation: recorded by this stop or an earlier one, or the one start
    /// brought back.
    pub recorded: Option<i64>,
    pub result: AppResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    /// Workloads found (missing extras not counted); `total` like every command's summary.
    #[serde(rename = "total")]
    pub workloads: usize,
    /// Stopped or started (or would be).
    pub changed: usize,
    /// Already in the wanted state, or left alone.
    pub unchanged: usize,
    pub not_found: usize,
    pub timed_out: usize,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppOutcome {
    pub action: Action,
    pub namespace: String,
    pub selection: Selection,
    pub annotation: &'static str,
    pub dry_run: bool,
    pub waited: bool,
    pub timeout_seconds: Option<f64>,
    pub summary: AppSummary,
    pub workloads: Vec<AppItem>,
}

impl AppOutcome {
    /// Whether anything failed or did not finish (exit 1).
    pub fn failed(&self) -> bool {
        self.summary.failed + self.summary.timed_out > 0
    }
}

/// The decision for one workload, from what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Set `spec.replicas` to `replicas` and the annotation to `record` (`None`: remove it).
    Scale {
        replicas: i64,
        record: Option<i64>,
        recorded: i64,
        message: Option<String>,
    },
    /// Leave it as it is.
    Keep {
        result: AppResult,
        recorded: Option<i64>,
        message: Option<String>,
    },
    Invalid(String),
}

fn recorded_count(workload: &Workload) -> Result<Option<i64>, String> {
    match workload.annotation(REPLICAS_ANNOTATION) {
        None => Ok(None),
        Some(text) => match text.trim().parse::<i64>() {
            Ok(count) if (0..=i64::from(i32::MAX)).contains(&count) => Ok(Some(count)),
            _ => Err(format!(
                "the annotation {REPLICAS_ANNOTATION} holds `{text}`, not a replica count: \
                 set it to the wanted count or remove it"
            )),
        },
    }
}

fn decide(action: Action, workload: &Workload) -> Decision {
    let recorded = match recorded_count(workload) {
        Ok(recorded) => recorded,
        Err(message) => return Decision::Invalid(message),
    };
    match (action, recorded) {
        (Action::Stop, Some(count)) if workload.replicas == 0 => Decision::Keep {
            result: AppResult::AlreadyStopped,
            recorded: Some(count),
            message: None,
        },
        // Scaled up again since an earlier stop (by a person, an operator): stop it again, and
        // keep the count recorded before the first stop, which is what start must restore.
        (Action::Stop, Some(count)) => Decision::Scale {
            replicas: 0,
            record: Some(count),
            recorded: count,
            message: Some(format!(
                "was at {} again; kept the count recorded by an earlier stop",
                workload.replicas
            )),
        },
        (Action::Stop, None) if workload.replicas == 0 => Decision::Keep {
            result: AppResult::AlreadyAtZero,
            recorded: None,
            message: Some("already at 0, nothing recorded: start leaves it at 0".into()),
        },
        (Action::Stop, None) => Decision::Scale {
            replicas: 0,
            record: Some(workload.replicas),
            recorded: workload.replicas,
            message: None,
        },
        (Action::Start, Some(count)) => Decision::Scale {
            replicas: count,
            record: None,
            recorded: count,
            message: (workload.replicas != 0).then(|| {
                format!(
                    "was at {} (changed since the stop); set to the recorded count",
                    workload.replicas
                )
            }),
        },
        (Action::Start, None) => Decision::Keep {
            result: AppResult::NotStopped,
            recorded: None,
            message: Some(format!(
                "no recorded count ({REPLICAS_ANNOTATION}): left alone"
            )),
        },
    }
}

fn error_message(err: &ClusterError) -> String {
    match err.hint() {
        Some(hint) => format!("{err} ({hint})"),
        None => err.to_string(),
    }
}

/// Decides and (unless a dry run) writes one workload. A 409 Conflict means it changed since it
/// was read: it is read again and decided again, so the decision always rests on what is
/// written. Returns the report and the workload as it is now.
async fn apply_one(
    cluster: &Cluster,
    action: Action,
    workload: &Workload,
    selected_by: SelectedBy,
    dry_run: bool,
) -> (AppItem, Option<Workload>) {
    let mut current = workload.clone();
    let mut item = AppItem {
        kind: Some(workload.kind),
        name: workload.name.clone(),
        selected_by,
        replicas_before: Some(workload.replicas),
        replicas_after: Some(workload.replicas),
        recorded: None,
        result: AppResult::Failed,
        message: None,
    };
    for _ in 0..CONFLICT_ATTEMPTS {
        item.replicas_before = Some(current.replicas);
        item.replicas_after = Some(current.replicas);
        match decide(action, &current) {
            Decision::Invalid(message) => {
                item.message = Some(message);
                return (item, Some(current));
            }
            Decision::Keep {
                result,
                recorded,
                message,
            } => {
                item.result = result;
                item.recorded = recorded;
                item.message = message;
                return (item, Some(current));
            }
            Decision::Scale {
                replicas,
                record,
                recorded,
                message,
            } => {
                item.recorded = Some(recorded);
                item.message = message;
                item.replicas_after = Some(replicas);
                if dry_run {
                    item.result = match action {
                        Action::Stop => AppResult::WouldStop,
                        Action::Start => AppResult::WouldStart,
                    };
                    return (item, Some(current));
                }
                let annotation = (REPLICAS_ANNOTATION, record.map(|n| n.to_string()));
                match workloads::set_replicas(cluster, &current, replicas, annotation).await {
                    Ok(written) => {
                        item.result = match action {
                            Action::Stop => AppResult::Stopped,
                            Action::Start => AppResult::Started,
                        };
                        return (item, Some(written));
                    }
                    Err(ClusterError::Api { code: 409, .. }) => {
                        match workloads::get(
                            cluster,
                            current.kind,
                            &current.namespace,
                            &current.name,
                        )
                        .await
                        {
                            Ok(Some(fresh)) => current = fresh,
                            Ok(None) => {
                                item.replicas_after = None;
                                item.message = Some("deleted since it was listed".into());
                                return (item, None);
                            }
                            Err(err) => {
                                item.replicas_after = Some(current.replicas);
                                item.message = Some(error_message(&err));
                                return (item, Some(current));
                            }
                        }
                    }
                    Err(ClusterError::NotFound { .. }) => {
                        item.replicas_after = None;
                        item.message = Some("deleted since it was listed".into());
                        return (item, None);
                    }
                    Err(err) => {
                        item.replicas_after = Some(current.replicas);
                        item.message = Some(error_message(&err));
                        return (item, Some(current));
                    }
                }
            }
        }
    }
    item.result = AppResult::Failed;
    item.replicas_after = Some(current.replicas);
    item.message = Some(format!(
        "changed by someone else {CONFLICT_ATTEMPTS} times while being scaled (an autoscaler or \
         operator fighting over it?); not changed"
    ));
    (item, Some(current))
}

/// What `action` would do to each selected workload, from what was read: for the confirmation
/// question and for planning. Read only.
pub fn preview(action: Action, selected: &Selected) -> Vec<(String, i64, i64)> {
    selected
        .workloads
        .iter()
        .filter_map(|(workload, _)| match decide(action, workload) {
            Decision::Scale { replicas, .. } => {
                Some((workload.display_name(), workload.replicas, replicas))
            }
            _ => None,
        })
        .collect()
}

/// Runs `action` on the selected workloads, several at a time, then waits for their pods when
/// `options.wait` says so.
pub async fn execute(
    cluster: &Cluster,
    action: Action,
    selected: &Selected,
    options: &AppOptions,
    printer: &Printer,
) -> Result<AppOutcome, ClusterError> {
    let progress = printer.progress(match action {
        Action::Stop => "scaling the app to 0",
        Action::Start => "scaling the app back",
    });
    progress.set_total(selected.workloads.len() as u64);
    let mut done: Vec<(usize, AppItem, Option<Workload>)> =
        futures::stream::iter(selected.workloads.iter().enumerate())
            .map(|(index, (workload, by))| async move {
                let (item, now) = apply_one(cluster, action, workload, *by, options.dry_run).await;
                (index, item, now)
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .inspect(|_| progress.inc())
            .collect()
            .await;
    progress.finish();
    done.sort_by_key(|(index, _, _)| *index);
    let waited = options.wait.is_some() && !options.dry_run;
    if let (Some(timeout), false) = (options.wait, options.dry_run) {
        wait_for_pods(cluster, action, &mut done, timeout, printer).await?;
    }
    let mut items: Vec<AppItem> = done.into_iter().map(|(_, item, _)| item).collect();
    items.extend(selected.missing_extras.iter().map(|name| AppItem {
        kind: None,
        name: name.clone(),
        selected_by: SelectedBy::Name,
        replicas_before: None,
        replicas_after: None,
        recorded: None,
        result: AppResult::NotFound,
        message: Some(format!(
            "no Deployment or StatefulSet of this name in {}",
            options.namespace
        )),
    }));
    Ok(AppOutcome {
        action,
        namespace: options.namespace.clone(),
        selection: options.selection.clone(),
        annotation: REPLICAS_ANNOTATION,
        dry_run: options.dry_run,
        waited,
        timeout_seconds: options.wait.map(|t| t.as_secs_f64()),
        summary: summarize(&items),
        workloads: items,
    })
}

/// Where a scaled workload is while waiting.
enum Check {
    /// Its pods have followed.
    Settled,
    /// Not yet: what is still missing.
    Pending(String),
    /// Deleted meanwhile.
    Gone,
}

/// Whether a workload's pods have followed: for a stop, no pod it controls left (terminating
/// ones still count: they may still write; pods that only carry its labels are someone else's
/// and go to `strangers`); for a start, the recorded count ready.
async fn settled(
    cluster: &Cluster,
    action: Action,
    workload: &Workload,
    target: i64,
    strangers: &mut Vec<String>,
) -> Result<Check, ClusterError> {
    if workload.replicas != target {
        return Ok(Check::Pending(format!(
            "scaled to {} by someone else meanwhile (an autoscaler or operator?)",
            workload.replicas
        )));
    }
    if !workload.observed() {
        return Ok(Check::Pending(
            "its controller has not acted on the change yet".into(),
        ));
    }
    match action {
        Action::Stop => {
            let pods = workloads::pods_of(cluster, workload).await?;
            strangers.extend(pods.stranger_names());
            let pods = pods.controlled;
            if pods.is_empty() && workload.status_replicas == 0 {
                Ok(Check::Settled)
            } else {
                let count = pods.len().max(workload.status_replicas as usize);
                Ok(Check::Pending(format!(
                    "{count} pod{} still there",
                    if count == 1 { "" } else { "s" }
                )))
            }
        }
        Action::Start => {
            if workload.ready_replicas >= target {
                Ok(Check::Settled)
            } else {
                Ok(Check::Pending(format!(
                    "{} of {target} replicas ready",
                    workload.ready_replicas
                )))
            }
        }
    }
}

/// Reads the scaled workloads until their pods have followed or `timeout` passes; those left
/// are timed out, with what they were still missing.
async fn wait_for_pods(
    cluster: &Cluster,
    action: Action,
    done: &mut [(usize, AppItem, Option<Workload>)],
    timeout: Duration,
    printer: &Printer,
) -> Result<(), ClusterError> {
    // Stop waits for every workload meant to be at zero (one stopped earlier may still have
    // terminating pods); start for those it scaled.
    let mut pending: Vec<usize> = done
        .iter()
        .enumerate()
        .filter(|(_, (_, item, now))| {
            now.is_some()
                && match action {
                    Action::Stop => matches!(
                        item.result,
                        AppResult::Stopped | AppResult::AlreadyStopped | AppResult::AlreadyAtZero
                    ),
                    Action::Start => item.result == AppResult::Started,
                }
        })
        .map(|(position, _)| position)
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let progress = printer.progress(match action {
        Action::Stop => "waiting for the pods to go",
        Action::Start => "waiting for the pods to be ready",
    });
    progress.set_total(pending.len() as u64);
    let mut missing: Vec<String> = vec![String::new(); done.len()];
    let mut strangers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let waited = poll::until_deadline(
        timeout,
        POLL_INTERVAL,
        async || -> Result<bool, ClusterError> {
            let checks: Vec<(usize, Result<Check, ClusterError>, Vec<String>)> =
                futures::stream::iter(pending.iter().copied())
                    .map(|position| {
                        let (_, item, now) = &done[position];
                        let target = item.replicas_after.unwrap_or(0);
                        let workload = now.clone().expect("pending workloads exist");
                        async move {
                            let fresh = workloads::get(
                                cluster,
                                workload.kind,
                                &workload.namespace,
                                &workload.name,
                            )
                            .await;
                            let mut strangers = Vec::new();
                            let answer = match fresh {
                                Ok(Some(fresh)) => {
                                    settled(cluster, action, &fresh, target, &mut strangers).await
                                }
                                Ok(None) => Ok(Check::Gone),
                                Err(err) => Err(err),
                            };
                            (position, answer, strangers)
                        }
                    })
                    .buffer_unordered(MAX_IN_FLIGHT)
                    .collect()
                    .await;
            for (position, answer, seen) in checks {
                if !seen.is_empty() {
                    let workload = done[position].2.as_ref().expect("pending workloads exist");
                    strangers
                        .entry(workload.display_name())
                        .or_default()
                        .extend(seen);
                }
                match answer? {
                    Check::Settled => {
                        pending.retain(|p| *p != position);
                        progress.inc();
                    }
                    Check::Pending(what) => missing[position] = what,
                    Check::Gone => {
                        pending.retain(|p| *p != position);
                        let item = &mut done[position].1;
                        item.result = AppResult::Failed;
                        item.message = Some("deleted while waiting for its pods".into());
                    }
                }
            }
            Ok(pending.is_empty())
        },
    )
    .await?;
    if waited == Waited::TimedOut {
        for position in &pending {
            let item = &mut done[*position].1;
            item.result = AppResult::TimedOut;
            item.message = Some(format!(
                "not finished after {}: {}",
                crate::duration::format(timeout),
                missing[*position]
            ));
        }
    }
    progress.finish();
    for (workload, pods) in strangers {
        printer.warning(&format!(
            "not waited for: {} (labelled like {workload} but not controlled by it; created by \
             someone else?)",
            pods.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

fn summarize(items: &[AppItem]) -> AppSummary {
    let mut summary = AppSummary::default();
    for item in items {
        if item.result != AppResult::NotFound {
            summary.workloads += 1;
        }
        match item.result {
            AppResult::WouldStop
            | AppResult::Stopped
            | AppResult::WouldStart
            | AppResult::Started => summary.changed += 1,
            AppResult::AlreadyStopped | AppResult::AlreadyAtZero | AppResult::NotStopped => {
                summary.unchanged += 1
            }
            AppResult::NotFound => summary.not_found += 1,
            AppResult::TimedOut => summary.timed_out += 1,
            AppResult::Failed => summary.failed += 1,
        }
    }
    summary
}

fn number(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |n| n.to_string())
}

impl Render for AppOutcome {
    fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .workloads
            .iter()
            .map(|item| {
                vec![
                    item.kind.map_or("-", WorkloadKind::singular).to_string(),
                    item.name.clone(),
                    number(item.replicas_before),
                    number(item.replicas_after),
                    number(item.recorded),
                    item.result.as_str().to_string(),
                    item.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let mut text = printer::table(
            &[
                "KIND", "NAME", "BEFORE", "AFTER", "RECORDED", "RESULT", "DETAIL",
            ],
            &rows,
        );
        let s = &self.summary;
        let ns = &self.namespace;
        let (verb, unchanged) = match self.action {
            Action::Stop => ("scaled to 0", "already at 0"),
            Action::Start => ("scaled back", "left alone (nothing recorded)"),
        };
        text.push('\n');
        if self.dry_run {
            text.push_str(&format!(
                "DRY RUN: {} of {} workloads in {ns} would be {verb}; nothing was changed.\n",
                s.changed, s.workloads
            ));
            return text;
        }
        text.push_str(&format!(
            "{} workloads in {ns}: {} {verb}, {} {unchanged}, {} failed",
            s.workloads, s.changed, s.unchanged, s.failed
        ));
        if s.timed_out > 0 {
            text.push_str(&format!(", {} not finished", s.timed_out));
        }
        if s.not_found > 0 {
            text.push_str(&format!(
                "; {} named extra{} not found",
                s.not_found,
                if s.not_found == 1 { "" } else { "s" }
            ));
        }
        text.push_str(".\n");
        let late: Vec<String> = self
            .workloads
            .iter()
            .filter(|i| i.result == AppResult::TimedOut)
            .map(|i| format!("{}/{}", i.kind.map_or("-", WorkloadKind::singular), i.name))
            .collect();
        match (self.waited, late.is_empty()) {
            (true, false) => text.push_str(&format!(
                "Not finished after {}: {}.\n",
                crate::duration::format(Duration::from_secs_f64(
                    self.timeout_seconds.unwrap_or_default()
                )),
                late.join(", ")
            )),
            (true, true) => text.push_str(match self.action {
                Action::Stop => "Their pods are gone.\n",
                Action::Start => "Their pods are ready.\n",
            }),
            (false, _) => {}
        }
        if self.action == Action::Stop && s.changed + s.unchanged > 0 {
            text.push_str(&format!(
                "Replica counts are recorded in the annotation {REPLICAS_ANNOTATION}; bring the \
                 app back with `kubectl mlbackup app start`.\n"
            ));
        }
        text
    }
}

/// Nothing matched: most likely the wrong namespace, which must not pass for a stopped app.
#[derive(Debug, thiserror::Error)]
#[error("no app workloads in the namespace `{namespace}` (selected by {selection})")]
pub struct NothingSelected {
    pub namespace: String,
    pub selection: String,
}

impl NothingSelected {
    pub fn hint(&self) -> String {
        "name the namespace DataRobot is installed in with --app-namespace or DR_CORE_NAMESPACE; \
         check the labels with `kubectl get deploy,sts --show-labels -n NAMESPACE` and pass -l"
            .to_string()
    }
}

pub async fn run(
    global: &GlobalArgs,
    command: &AppCommand,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (action, selection, wait, dry_run, yes): (_, _, &AppWaitArgs, _, _) = match command {
        AppCommand::Stop(args) => (
            Action::Stop,
            &args.selection,
            &args.wait,
            args.dry_run,
            args.yes,
        ),
        AppCommand::Start(args) => (
            Action::Start,
            &args.selection,
            &args.wait,
            args.dry_run,
            true,
        ),
    };
    let cluster = super::connect(global, env).await?;
    let options = AppOptions {
        namespace: cluster.app_namespace(selection.app_namespace.as_deref(), env),
        selection: Selection::from_args(selection),
        dry_run,
        wait: (!wait.no_wait).then_some(wait.timeout),
    };
    let selected = select(&cluster, &options)
        .await
        .context("cannot find the app's workloads")?;
    if selected.workloads.is_empty() {
        let mut described = options.selection.selectors.join(" or ");
        if !options.selection.extras.is_empty() {
            described.push_str(&format!(
                ", and by name {}",
                options.selection.extras.join(", ")
            ));
        }
        return Err(NothingSelected {
            namespace: options.namespace.clone(),
            selection: described,
        }
        .into());
    }
    let changes = preview(action, &selected);
    if !dry_run && !yes && !changes.is_empty() {
        confirm(&options.namespace, &changes, env, printer)?;
    }
    let cancel = super::interrupt_token();
    let work = execute(&cluster, action, &selected, &options, printer);
    let outcome = tokio::select! {
        outcome = work => outcome.context(match action {
            Action::Stop => "cannot stop the app",
            Action::Start => "cannot start the app",
        })?,
        () = cancel.cancelled() => {
            printer.error(&anyhow::anyhow!(
                "interrupted; the changes already sent stay: run `kubectl mlbackup app {}` \
                 again to finish (recorded counts are kept)",
                match action { Action::Stop => "stop", Action::Start => "start" }
            ));
            return Ok(Exit::Interrupted);
        }
    };
    printer.data(&outcome)?;
    Ok(if outcome.failed() {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// Shows what goes down and asks; `--yes` is required when no one can answer.
fn confirm(
    namespace: &str,
    changes: &[(String, i64, i64)],
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<()> {
    let count = changes.len();
    let consent = Consent {
        what: format!("scale {count} app workloads in {namespace} to 0"),
        hint: "pass --yes to stop the app without being asked; --dry-run shows the plan",
        declined: "nothing changed: stopping the app was not confirmed",
    };
    printer.consent(env.stdin_is_terminal, consent, || {
        let rows: Vec<Vec<String>> = changes
            .iter()
            .map(|(name, before, _)| vec![name.clone(), before.to_string()])
            .collect();
        Ok(format!(
            "{}Scale these {count} workloads in {namespace} to 0 (the app stops until `app start`)?",
            printer::table(&["WORKLOAD", "REPLICAS"], &rows)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn workload(replicas: i32, annotation: Option<&str>) -> Workload {
        let deployment = Deployment {
            metadata: ObjectMeta {
                name: Some("w".into()),
                namespace: Some("dr".into()),
                resource_version: Some("7".into()),
                generation: Some(2),
                annotations: annotation
                    .map(|value| [(REPLICAS_ANNOTATION.to_string(), value.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "w".to_string())].into()),
                    ..LabelSelector::default()
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        };
        Workload::from_deployment(deployment)
    }

    #[test]
    fn stop_records_the_running_count_and_never_overwrites_a_recorded_one() {
        assert_eq!(
            decide(Action::Stop, &workload(3, None)),
            Decision::Scale {
                replicas: 0,
                record: Some(3),
                recorded: 3,
                message: None
            }
        );
        assert!(matches!(
            decide(Action::Stop, &workload(0, Some("3"))),
            Decision::Keep {
                result: AppResult::AlreadyStopped,
                recorded: Some(3),
                ..
            }
        ));
        assert!(matches!(
            decide(Action::Stop, &workload(0, None)),
            Decision::Keep {
                result: AppResult::AlreadyAtZero,
                recorded: None,
                ..
            }
        ));
        // Scaled up again after a stop: back to zero, the first recorded count kept.
        assert!(matches!(
            decide(Action::Stop, &workload(2, Some("3"))),
            Decision::Scale {
                replicas: 0,
                record: Some(3),
                ..
            }
        ));
        assert!(matches!(
            decide(Action::Stop, &workload(2, Some("three"))),
            Decision::Invalid(_)
        ));
    }

    #[test]
    fn start_restores_the_recorded_count_and_leaves_the_others_alone() {
        assert!(matches!(
            decide(Action::Start, &workload(0, Some("3"))),
            Decision::Scale {
                replicas: 3,
                record: None,
                message: None,
                ..
            }
        ));
        assert!(matches!(
            decide(Action::Start, &workload(0, Some("0"))),
            Decision::Scale {
                replicas: 0,
                record: None,
                ..
            }
        ));
        assert!(matches!(
            decide(Action::Start, &workload(2, None)),
            Decision::Keep {
                result: AppResult::NotStopped,
                ..
            }
        ));
        assert!(matches!(
            decide(Action::Start, &workload(0, Some("-1"))),
            Decision::Invalid(_)
        ));
    }

    #[test]
    fn the_selection_defaults_to_the_dr_release_and_pgpool() {
        let args = |selector: Option<&str>, extras: &[&str], no_extras: bool| AppSelectionArgs {
            app_namespace: None,
            selector: selector.map(str::to_string),
            extras: extras.iter().map(|s| s.to_string()).collect(),
            no_extras,
        };
        let default = Selection::from_args(&args(None, &[], false));
        assert_eq!(default.selectors, DEFAULT_SELECTORS);
        assert_eq!(default.extras, ["pcs-pgpool"]);
        let custom = Selection::from_args(&args(Some("tier=app"), &["a", "pcs-pgpool"], false));
        assert_eq!(custom.selectors, ["tier=app"]);
        assert_eq!(custom.extras, ["pcs-pgpool", "a"]);
        let none = Selection::from_args(&args(None, &["a"], true));
        assert_eq!(none.extras, ["a"]);
    }
}
