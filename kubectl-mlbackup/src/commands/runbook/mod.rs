//! The runbooks: `prepare` (before an upgrade) and `recover` (after it), one file each. They sit
//! above the standalone commands and run their work functions. Here, what the two share: the
//! list of steps, the report of each step and the summary table, the journal records of each
//! step, and how the outcome of a standalone command's work function (the same code `backup`,
//! `deployments`, `spark-cleanup`, `restore` and `diff` run) becomes a step report.

pub mod prepare;
pub mod recover;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::commands::Finished;
use crate::commands::backup::BackupOutcome;
use crate::commands::deployments::{self, ChangeOptions, ChangeOutcome};
use crate::commands::restore::RestoreOutcome;
use crate::commands::spark_cleanup::{CleanupOutcome, CleanupResult};
use crate::datarobot::Api;
use crate::exit::Exit;
use crate::folder::{Backup, StepEvent, StepRecord};
use crate::printer::{self, Printer, Render};
use crate::store::Found;
use mlbackup_helper::plan::Action;
use mlbackup_helper::protocol::{Outcome, StopReason};
use tokio_util::sync::CancellationToken;

/// One step of a runbook. `prepare` and `recover` run them in the order of their lists
/// ([`prepare::STEPS`], [`recover::STEPS`]); a new step is a variant here, an
/// entry in a list and an arm where the list is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// prepare: a backup of every LRS.
    Backup,
    /// prepare: the deployment snapshot, then the deactivation.
    DeactivateDeployments,
    /// prepare: the Spark sessions deleted.
    SparkCleanup,
    /// prepare (`--stop-app`): the app scaled to 0, its replica counts recorded.
    StopApp,
    /// recover (`--start-app`): the app scaled back to its recorded replica counts.
    StartApp,
    /// recover: the missing LRSes restored.
    RestoreLrs,
    /// recover: the deployments recorded active reactivated.
    ReactivateDeployments,
    /// recover: the backup compared with the cluster, the deployments checked.
    Verify,
}

impl Step {
    /// The name in tables and in the journal.
    pub fn name(self) -> &'static str {
        match self {
            Step::Backup => "backup",
            Step::DeactivateDeployments => "deactivate-deployments",
            Step::SparkCleanup => "spark-cleanup",
            Step::StopApp => "stop-app",
            Step::StartApp => "start-app",
            Step::RestoreLrs => "restore-lrs",
            Step::ReactivateDeployments => "reactivate-deployments",
            Step::Verify => "verify",
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepResult {
    Done,
    /// Finished by an earlier run of the same prepare (`--resume`): not repeated.
    AlreadyDone,
    /// Left out by a flag, or nothing to do it with.
    Skipped,
    /// `--dry-run`: the summary says what it would do.
    DryRun,
    Failed,
    Interrupted,
    /// Not started: an earlier step failed or was interrupted.
    NotRun,
}

impl StepResult {
    pub fn as_str(self) -> &'static str {
        match self {
            StepResult::Done => "done",
            StepResult::AlreadyDone => "already-done",
            StepResult::Skipped => "skipped",
            StepResult::DryRun => "dry-run",
            StepResult::Failed => "failed",
            StepResult::Interrupted => "interrupted",
            StepResult::NotRun => "not-run",
        }
    }

    /// The step left nothing for a later run to do.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StepResult::Done | StepResult::AlreadyDone | StepResult::Skipped | StepResult::DryRun
        )
    }
}

/// What one step did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    pub step: Step,
    pub result: StepResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub seconds: f64,
    /// One line for the table.
    pub summary: String,
    pub counts: BTreeMap<String, usize>,
    /// What failed or did not finish, by name.
    pub errors: Vec<String>,
    /// The outcome of the work the step ran, as the standalone command reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl StepReport {
    pub fn new(step: Step, result: StepResult, summary: impl Into<String>) -> StepReport {
        StepReport {
            step,
            result,
            started_at: None,
            finished_at: None,
            seconds: 0.0,
            summary: summary.into(),
            counts: BTreeMap::new(),
            errors: Vec::new(),
            detail: None,
        }
    }

    /// A step whose work stopped with an error before it had an outcome.
    pub fn from_error(step: Step, err: &anyhow::Error) -> StepReport {
        let interrupted = err.chain().any(|c| c.is::<crate::exit::Interrupted>());
        let mut report = StepReport::new(
            step,
            if interrupted {
                StepResult::Interrupted
            } else {
                StepResult::Failed
            },
            err.to_string(),
        );
        report.errors.push(error_text(err));
        report
    }

    fn counted(mut self, counts: &[(&str, usize)]) -> Self {
        self.counts = counts
            .iter()
            .map(|(key, n)| (key.to_string(), *n))
            .collect();
        self
    }

    fn with_detail<T: Serialize>(mut self, outcome: &T) -> Self {
        self.detail = serde_json::to_value(outcome).ok();
        self
    }
}

/// `what: why: why` and the hint, on one line.
pub fn error_text(err: &anyhow::Error) -> String {
    match crate::commands::diagnostics::hint(err) {
        Some(hint) => format!("{err:#} (hint: {hint})"),
        None => format!("{err:#}"),
    }
}

/// The result of a step whose work ended as `exit`.
fn result_of(exit: Exit, dry_run: bool) -> StepResult {
    match exit {
        Exit::Success if dry_run => StepResult::DryRun,
        Exit::Success => StepResult::Done,
        Exit::Interrupted => StepResult::Interrupted,
        Exit::Failure | Exit::Usage => StepResult::Failed,
    }
}

fn with_error<T>(mut report: StepReport, finished: &Finished<T>) -> StepReport {
    if let Some(err) = &finished.error {
        report.errors.insert(0, error_text(err));
    }
    report
}

/// The backup step's report.
pub fn backup_report(finished: Finished<BackupOutcome>) -> StepReport {
    let outcome = &finished.outcome;
    let by_type = outcome
        .counts_by_type
        .iter()
        .map(|(t, n)| format!("{} {n}", printer::none_if_empty(t)))
        .collect::<Vec<_>>()
        .join(", ");
    let summary = format!(
        "{} LRS objects{} in {}",
        outcome.objects,
        if by_type.is_empty() {
            String::new()
        } else {
            format!(" ({by_type})")
        },
        outcome.path.display()
    );
    let mut report = StepReport::new(Step::Backup, result_of(finished.exit, false), summary)
        .counted(&[("objects", outcome.objects)])
        .with_detail(outcome);
    report.errors.extend(outcome.errors.iter().cloned());
    with_error(report, &finished)
}

/// The report of a deactivation or reactivation step: what did not finish is named.
pub fn change_report(
    step: Step,
    finished: Finished<ChangeOutcome>,
    timeout: std::time::Duration,
) -> StepReport {
    let outcome = &finished.outcome;
    let count = |o: Outcome| outcome.summary.get(&o).copied().unwrap_or(0);
    let verb = match step {
        Step::DeactivateDeployments => "deactivated",
        _ => "reactivated",
    };
    let summary = if outcome.dry_run {
        format!(
            "{} deployments would be {verb}, {} left alone",
            count(Outcome::WouldChange),
            outcome.left_alone
        )
    } else {
        format!(
            "{} {verb}, {} already so, {} left alone{}",
            count(Outcome::Changed) + count(Outcome::Requested),
            count(Outcome::Unchanged),
            outcome.left_alone,
            outcome
                .snapshot
                .as_ref()
                .map(|p| format!("; states in {}", p.display()))
                .unwrap_or_default()
        )
    };
    let mut report = StepReport::new(step, result_of(finished.exit, outcome.dry_run), summary)
        .counted(&[
            (
                "changed",
                count(Outcome::Changed) + count(Outcome::Requested),
            ),
            ("unchanged", count(Outcome::Unchanged)),
            ("wouldChange", count(Outcome::WouldChange)),
            ("failed", count(Outcome::Failed)),
            ("notAttempted", count(Outcome::NotAttempted)),
            ("unknown", count(Outcome::Unknown)),
            ("missing", count(Outcome::Missing)),
            ("leftAlone", outcome.left_alone),
        ])
        .with_detail(outcome);
    if outcome.stopped == Some(StopReason::TimedOut) {
        report.errors.push(format!(
            "timed out after {} (--timeout): the deployments below were not {verb}",
            crate::duration::format(timeout)
        ));
    }
    for item in &outcome.deployments {
        if matches!(
            item.outcome,
            Outcome::Failed | Outcome::NotAttempted | Outcome::Unknown | Outcome::Missing
        ) {
            report.errors.push(format!(
                "deployment {} ({}): {}{}",
                item.id,
                item.label,
                item.outcome.as_str(),
                item.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    with_error(report, &finished)
}

/// The Spark cleanup step's report: sessions still there after the timeout are named.
pub fn cleanup_report(finished: Finished<CleanupOutcome>) -> StepReport {
    let outcome = &finished.outcome;
    let s = &outcome.summary;
    let summary = if outcome.dry_run {
        format!("{} Spark sessions would be deleted", s.found)
    } else {
        format!(
            "{} Spark sessions: {} deleted, {} still deleting, {} not gone in time, {} failed",
            s.found, s.deleted, s.deleting, s.timed_out, s.failed
        )
    };
    let mut report = StepReport::new(
        Step::SparkCleanup,
        result_of(finished.exit, outcome.dry_run),
        summary,
    )
    .counted(&[
        ("found", s.found),
        ("deleted", s.deleted),
        ("deleting", s.deleting),
        ("timedOut", s.timed_out),
        ("failed", s.failed),
    ])
    .with_detail(outcome);
    for item in &outcome.items {
        let why = match item.result {
            CleanupResult::TimedOut => format!(
                "not gone after {} (held by finalizers {})",
                crate::duration::format(std::time::Duration::from_secs_f64(
                    outcome.timeout_seconds
                )),
                item.finalizers.join(", ")
            ),
            CleanupResult::Failed | CleanupResult::Interrupted => {
                item.message.clone().unwrap_or_default()
            }
            _ => continue,
        };
        report.errors.push(format!(
            "Spark session {}/{}: {why}",
            item.namespace, item.name
        ));
    }
    with_error(report, &finished)
}

/// The report of an `app stop|start` step.
pub fn app_report(
    step: Step,
    outcome: anyhow::Result<crate::commands::app::AppOutcome>,
) -> StepReport {
    match outcome {
        Ok(outcome) => {
            let s = &outcome.summary;
            let result = if outcome.failed() {
                StepResult::Failed
            } else {
                StepResult::Done
            };
            let summary = format!(
                "{} workloads: {} changed, {} unchanged, {} failed or not in time",
                s.workloads,
                s.changed,
                s.unchanged,
                s.failed + s.timed_out
            );
            let mut report = StepReport::new(step, result, summary)
                .counted(&[
                    ("workloads", s.workloads),
                    ("changed", s.changed),
                    ("failed", s.failed + s.timed_out),
                ])
                .with_detail(&outcome);
            // What did not finish is named, as in the other waiting steps.
            for item in &outcome.workloads {
                let why = match item.result {
                    super::app::AppResult::TimedOut => format!(
                        "not finished after {}",
                        crate::duration::format(std::time::Duration::from_secs_f64(
                            outcome.timeout_seconds.unwrap_or_default()
                        ))
                    ),
                    super::app::AppResult::Failed => "failed".to_string(),
                    _ => continue,
                };
                report.errors.push(format!(
                    "{}/{}: {why}{}",
                    item.kind
                        .map_or("-", crate::cluster::workloads::WorkloadKind::singular),
                    item.name,
                    item.message
                        .as_ref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
            report
        }
        Err(err) => StepReport::from_error(step, &err),
    }
}

/// Stops or starts the app with `app`'s default selection in `namespace`.
pub async fn run_app(
    cluster: &Cluster,
    action: crate::commands::app::Action,
    namespace: String,
    dry_run: bool,
    timeout: std::time::Duration,
    printer: &Printer,
) -> anyhow::Result<crate::commands::app::AppOutcome> {
    use crate::commands::app::{self, AppOptions, Selection};
    let options = AppOptions {
        namespace,
        selection: Selection::from_args(&Default::default()),
        dry_run,
        wait: Some(timeout),
    };
    let selected = app::select(cluster, &options).await?;
    if selected.workloads.is_empty() {
        return Err(app::NothingSelected {
            namespace: options.namespace.clone(),
            selection: options.selection.selectors.join(" or "),
        }
        .into());
    }
    Ok(app::execute(cluster, action, &selected, &options, printer).await?)
}

/// Deactivates or reactivates, as `step` says, the deployments that the snapshot at `state`
/// decides, with the runbooks' choices: the engine's concurrency, each change waited for. Nothing
/// is asked: a prepare is confirmed once for all its steps, and reactivating the recorded
/// deployments needs no yes.
/// Where a step's deployment snapshot is: its file, and the bucket's backup (mirrored) it is
/// uploaded to before the first change.
pub struct SnapshotAt {
    pub path: Option<PathBuf>,
    pub bucket: Option<std::sync::Arc<Found>>,
}

pub async fn change_deployments(
    step: Step,
    api: &Api,
    snapshot: SnapshotAt,
    dry_run: bool,
    timeout: std::time::Duration,
    cancel: &CancellationToken,
    printer: &Printer,
) -> StepReport {
    let options = ChangeOptions {
        action: match step {
            Step::DeactivateDeployments => Action::Deactivate,
            _ => Action::Reactivate,
        },
        state: snapshot.path,
        snapshot_to: snapshot.bucket,
        all: false,
        yes: true,
        only: Vec::new(),
        dry_run,
        concurrency: mlbackup_helper::engine::DEFAULT_CONCURRENCY,
        wait: true,
        timeout,
        // Never read: `yes` is set.
        stdin_is_terminal: false,
    };
    match deployments::change_through(api, &options, cancel, printer).await {
        Ok(finished) => change_report(step, finished, timeout),
        Err(err) => StepReport::from_error(step, &err),
    }
}

/// The restore step's report.
pub fn restore_report(finished: Finished<RestoreOutcome>) -> StepReport {
    let outcome = &finished.outcome;
    let s = &outcome.summary;
    let summary = format!(
        "{}{} created, {} updated, {} unchanged, {} left alone (differ from the backup), {} failed",
        if outcome.dry_run.is_some() {
            "would be: "
        } else {
            ""
        },
        s.created,
        s.updated,
        s.unchanged,
        s.skipped_differs,
        s.failed
    );
    let mut report = StepReport::new(
        Step::RestoreLrs,
        result_of(finished.exit, outcome.dry_run.is_some()),
        summary,
    )
    .counted(&[
        ("created", s.created),
        ("updated", s.updated),
        ("unchanged", s.unchanged),
        ("skippedDiffers", s.skipped_differs),
        ("failed", s.failed),
    ])
    .with_detail(outcome);
    report.errors.extend(outcome.failures());
    with_error(report, &finished)
}

/// Records the steps of one runbook run in the backup's journal, and shows each step starting
/// on a terminal.
pub struct Journal<'a> {
    pub runbook: &'static str,
    /// Where records go; `None` until the backup exists, and for dry runs.
    pub backup: Option<Backup>,
    /// A bucket's backup (mirrored into `backup`): each record is uploaded as it is written.
    pub bucket: Option<std::sync::Arc<Found>>,
    pub printer: &'a Printer,
    pub total: usize,
}

impl Journal<'_> {
    /// A step begins: shown, and recorded as started (so a step cut short is known).
    pub async fn started(&self, step: Step) -> DateTime<Utc> {
        let at = Utc::now();
        let index = self.index_of(step);
        self.printer
            .step(&format!("[{index}/{}] {}", self.total, step.name()));
        self.record_started(step, at).await;
        at
    }

    /// Records that `step` started at `at`.
    pub async fn record_started(&self, step: Step, at: DateTime<Utc>) {
        self.append(&StepRecord {
            runbook: self.runbook.to_string(),
            step: step.name().to_string(),
            event: StepEvent::Started,
            started_at: at,
            finished_at: None,
            result: None,
            counts: BTreeMap::new(),
            errors: Vec::new(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await;
    }

    /// A step ended: its times set, recorded as finished with its result.
    pub async fn finished(&self, report: &mut StepReport, started_at: DateTime<Utc>) {
        let at = Utc::now();
        report.started_at = Some(started_at);
        report.finished_at = Some(at);
        report.seconds = (at - started_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.append(&StepRecord {
            runbook: self.runbook.to_string(),
            step: report.step.name().to_string(),
            event: StepEvent::Finished,
            started_at,
            finished_at: Some(at),
            result: Some(report.result.as_str().to_string()),
            counts: report.counts.clone(),
            errors: report.errors.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await;
    }

    /// A step that did not run this time (already done, skipped by a flag): recorded too, so
    /// the journal tells the whole run.
    pub async fn passed(&self, report: &mut StepReport) {
        let at = Utc::now();
        self.printer.step(&format!(
            "[{}/{}] {}: {}",
            self.index_of(report.step),
            self.total,
            report.step.name(),
            report.result.as_str()
        ));
        if report.result == StepResult::Skipped {
            self.finished(report, at).await;
        }
    }

    fn index_of(&self, step: Step) -> usize {
        let list: &[Step] = match self.runbook {
            "prepare" => prepare::STEPS,
            _ => recover::STEPS,
        };
        list.iter().position(|s| *s == step).map_or(0, |i| i + 1)
    }

    async fn append(&self, record: &StepRecord) {
        let appended = match (&self.bucket, &self.backup) {
            (Some(found), _) => found
                .append_journal(record)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            (None, Some(backup)) => backup
                .append_journal(record)
                .map(drop)
                .map_err(|e| e.to_string()),
            (None, None) => Ok(()),
        };
        if let Err(err) = appended {
            self.printer.warning(&format!(
                "the {} step was not recorded in the journal: {err}",
                record.step
            ));
        }
    }

    /// The journal file, once there is a backup to hold it (a bucket's: its object).
    pub fn path(&self) -> Option<PathBuf> {
        match &self.bucket {
            Some(found) => Some(PathBuf::from(found.locate(crate::folder::JOURNAL_FILE))),
            None => self
                .backup
                .as_ref()
                .map(|b| b.dir.join(crate::folder::JOURNAL_FILE)),
        }
    }
}

/// How the whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    Succeeded,
    Failed,
    Interrupted,
}

/// What `prepare` or `recover` did, step by step.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunbookOutcome {
    pub runbook: &'static str,
    pub backup: Option<String>,
    pub path: Option<PathBuf>,
    pub dry_run: bool,
    pub result: RunResult,
    pub steps: Vec<StepReport>,
    /// The journal the steps were recorded in.
    pub journal: Option<PathBuf>,
    /// What to run next: `recover` after a prepare, `prepare --resume` after an unfinished
    /// one, the same `recover` again after an unfinished recover.
    pub next: Option<String>,
}

impl RunbookOutcome {
    /// Fills in the result from the steps: interrupted wins over failed.
    pub fn conclude(&mut self) {
        self.result = if self
            .steps
            .iter()
            .any(|s| s.result == StepResult::Interrupted)
        {
            RunResult::Interrupted
        } else if self.steps.iter().all(|s| s.result.is_finished()) {
            RunResult::Succeeded
        } else {
            RunResult::Failed
        };
    }

    pub fn exit(&self) -> Exit {
        match self.result {
            RunResult::Succeeded => Exit::Success,
            RunResult::Failed => Exit::Failure,
            RunResult::Interrupted => Exit::Interrupted,
        }
    }
}

impl Render for RunbookOutcome {
    fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                vec![
                    (index + 1).to_string(),
                    step.step.name().to_string(),
                    step.result.as_str().to_string(),
                    if step.started_at.is_some() {
                        format!("{:.1}s", step.seconds)
                    } else {
                        "-".into()
                    },
                    step.summary.clone(),
                ]
            })
            .collect();
        let mut text = String::new();
        if self.dry_run {
            text.push_str(&format!(
                "DRY RUN of {}: nothing was changed or written.\n\n",
                self.runbook
            ));
        }
        text.push_str(&printer::table(
            &["#", "STEP", "RESULT", "TIME", "SUMMARY"],
            &rows,
        ));
        for step in self.steps.iter().filter(|s| !s.errors.is_empty()) {
            text.push_str(&format!("\n{}:\n", step.step.name()));
            for error in &step.errors {
                text.push_str(&format!("  - {error}\n"));
            }
        }
        text.push('\n');
        let verdict = match (self.result, self.dry_run) {
            (RunResult::Succeeded, true) => "The plan above changes nothing until run without \
                                             --dry-run."
                .to_string(),
            (RunResult::Succeeded, false) => {
                format!("{} finished.", printer::capitalised(self.runbook))
            }
            (RunResult::Failed, _) => format!(
                "{} did NOT finish: see the failed steps above; a re-run is safe.",
                printer::capitalised(self.runbook)
            ),
            (RunResult::Interrupted, _) => format!(
                "{} was INTERRUPTED: what was done is recorded; a re-run is safe.",
                printer::capitalised(self.runbook)
            ),
        };
        text.push_str(&verdict);
        text.push('\n');
        if let Some(journal) = &self.journal {
            text.push_str(&format!("Journal: {}\n", journal.display()));
        }
        if let Some(next) = &self.next {
            text.push_str(&format!("Next, run:\n  {next}\n"));
        }
        text
    }
}

/// A shell word: quoted only when it needs to be.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The flags that choose the cluster, the backup directory and the DataRobot access, as given
/// to this run: what the next command needs to act on the same things.
pub fn same_target_flags(
    global: &crate::cli::GlobalArgs,
    dir: Option<&std::path::Path>,
    datarobot: Option<&crate::cli::DataRobotArgs>,
) -> Vec<String> {
    let mut flags = Vec::new();
    let mut flag = |name: &str, value: &str| {
        flags.push(format!("{name} {}", shell_word(value)));
    };
    if let Some(dir) = dir {
        flag("--dir", &dir.display().to_string());
    }
    if let Some(path) = &global.kubeconfig {
        flag("--kubeconfig", &path.display().to_string());
    }
    if let Some(context) = &global.context {
        flag("--context", context);
    }
    if let Some(resource) = &global.cluster {
        flag("--cluster", resource);
    }
    if let Some(user) = &global.user {
        flag("--user", user);
    }
    if let Some(args) = datarobot {
        if args.via == crate::cli::Via::Local {
            flag("--via", "local");
        } else {
            let app = args.pod.app.to_string();
            if app != "deploy/mmapp-app" {
                flag("--app", &app);
            }
            if let Some(namespace) = &args.pod.app_namespace {
                flag("--app-namespace", namespace);
            }
            if let Some(container) = &args.pod.container {
                flag("--container", container);
            }
            if let Some(helper) = &args.pod.helper {
                flag("--helper", &helper.display().to_string());
            }
        }
        if let Some(url) = &args.api_url {
            flag("--api-url", url);
        }
        if let Some(path) = &args.token_file {
            flag("--token-file", &path.display().to_string());
        }
        if let Some(path) = &args.ca_file {
            flag("--ca-file", &path.display().to_string());
        }
        if args.insecure_skip_tls_verify {
            flags.push("--insecure-skip-tls-verify".into());
        }
    }
    flags
}
