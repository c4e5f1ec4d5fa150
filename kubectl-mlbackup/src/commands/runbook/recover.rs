//! `recover BACKUP`: the runbook after an upgrade. The LRSes missing in the cluster restored,
//! exactly the deployments recorded active reactivated, then a verification; each step through
//! the same work function as its standalone command and recorded in the backup's journal.
//!
//! Every step runs even when an earlier one failed (deployments coming back do not depend on
//! one LRS that would not restore), and every step is safe to repeat: a restore leaves existing
//! objects alone and a reactivation touches only what is not active yet. So a re-run is the
//! resume: it does what is left and reports the rest as already so.
//!
//! Spark sessions are not restored: prepare deleted them on purpose (the app must not reconnect
//! to stale sessions), and the verification does not count them as missing.

use std::path::PathBuf;

use anyhow::Context;
use mlbackup_helper::snapshot::Snapshot;

use super::{Journal, RunResult, RunbookOutcome, Step, StepReport, StepResult, shell_word};
use crate::cli::{DryRun, GlobalArgs, RecoverArgs};
use crate::cluster::Cluster;
use crate::cluster::list::ServedResource;
use crate::commands::diff::{self, DiffStatus};
use crate::commands::restore::{self, RestoreError, RestoreOptions};
use crate::commands::{connect_to_datarobot, connect_to_lrs, interrupt_token};
use crate::datarobot::Api;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{self, Backup, CatalogStatus, DEPLOYMENTS_FILE};
use crate::object::SPARK_TYPE;
use crate::printer::Printer;
use crate::store::{Found, Read};

/// The steps, in order.
pub const STEPS: &[Step] = &[
    // First: the deployments are reactivated through the app's pod.
    Step::StartApp,
    Step::RestoreLrs,
    Step::ReactivateDeployments,
    Step::Verify,
];

pub async fn run(
    global: &GlobalArgs,
    args: &RecoverArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let store = crate::commands::open_store(&args.backups, env, printer)?;
    let root = store.shown();
    // A bucket's backup is read into a private mirror (kept until the end): recover only reads
    // it, and its journal is uploaded again at the end.
    let found = store
        .find(&args.name, Read::Everything)
        .await
        .with_context(|| format!("cannot recover from the backup `{}`", args.name))?;
    let backup = found.backup.clone();
    if backup.status == CatalogStatus::Partial {
        return Err(RestoreError::Partial { name: backup.name }.into());
    }
    let backup = crate::commands::keys::open_backup(backup, &args.identity, env, printer, true)?;
    let snapshot = backup.dir.join(DEPLOYMENTS_FILE);
    let has_snapshot = backup.has_file(DEPLOYMENTS_FILE);
    let (cluster, resource) = connect_to_lrs(global, env, args.resource.as_ref()).await?;
    let wants_api = !args.skip_deployments && has_snapshot;
    // Everything that can be refused is checked before the first step; but a stopped app has no
    // pod to run the helper in until the start-app step brought it back.
    let api = match wants_api && !args.start_app {
        true => {
            Some(connect_to_datarobot(global, &args.datarobot, Some(&cluster), env, printer).await?)
        }
        false => None,
    };
    let recovery = Recovery {
        global,
        env,
        args,
        cluster: &cluster,
        resource: &resource,
        api: api.as_ref(),
        late_api: tokio::sync::OnceCell::new(),
        wants_api,
        backup: &backup,
        found: &found,
        journaled: !store.is_read_only(),
        snapshot: has_snapshot.then_some(snapshot),
        root: &root,
        printer,
    };
    let mut outcome = recovery.steps().await;
    if outcome.journal.is_some() && found.in_bucket() {
        match found.upload(folder::JOURNAL_FILE).await {
            Ok(()) => outcome.journal = Some(PathBuf::from(found.locate(folder::JOURNAL_FILE))),
            Err(err) => printer.warning(&format!(
                "the recover was not recorded in the journal of {}: {err}",
                found.shown.display()
            )),
        }
    }
    printer.data(&outcome)?;
    Ok(outcome.exit())
}

/// What every step needs.
struct Recovery<'a> {
    global: &'a GlobalArgs,
    env: &'a Env,
    args: &'a RecoverArgs,
    cluster: &'a Cluster,
    resource: &'a ServedResource,
    api: Option<&'a Api>,
    /// With --start-app: made once the app runs again (see `api`).
    late_api: tokio::sync::OnceCell<Api>,
    wants_api: bool,
    backup: &'a Backup,
    /// Where the backup is (a folder, or a bucket's, mirrored).
    found: &'a Found,
    /// False on a read-only location: nothing is recorded.
    journaled: bool,
    /// The backup's deployments.json, when it has one.
    snapshot: Option<std::path::PathBuf>,
    root: &'a std::path::Path,
    printer: &'a Printer,
}

impl Recovery<'_> {
    async fn steps(&self) -> RunbookOutcome {
        let args = self.args;
        let journal = Journal {
            runbook: "recover",
            backup: (!args.dry_run && self.journaled && self.backup.has_journal())
                .then(|| self.backup.clone()),
            // Uploaded once at the end (see `run`).
            bucket: None,
            printer: self.printer,
            total: STEPS.len(),
        };
        let mut outcome = RunbookOutcome {
            runbook: "recover",
            backup: Some(self.backup.name.clone()),
            path: Some(self.found.shown.clone()),
            dry_run: args.dry_run,
            result: RunResult::Succeeded,
            steps: Vec::new(),
            journal: None,
            next: None,
        };
        let cancel = interrupt_token();
        for &step in STEPS {
            if cancel.is_cancelled() {
                let result = if outcome
                    .steps
                    .iter()
                    .any(|s| s.result == StepResult::Interrupted)
                {
                    StepResult::NotRun
                } else {
                    StepResult::Interrupted
                };
                outcome
                    .steps
                    .push(StepReport::new(step, result, "not started: interrupted"));
                continue;
            }
            let skip = match step {
                Step::StartApp if !args.start_app => Some("not asked for (--start-app)"),
                Step::ReactivateDeployments | Step::Verify if args.skip_deployments => {
                    (step == Step::ReactivateDeployments).then_some("skipped by flag")
                }
                Step::ReactivateDeployments if self.snapshot.is_none() => {
                    Some("the backup holds no deployment snapshot (deployments.json)")
                }
                _ => None,
            };
            if let Some(why) = skip {
                let mut report = StepReport::new(step, StepResult::Skipped, why);
                journal.passed(&mut report).await;
                outcome.steps.push(report);
                continue;
            }
            let started = journal.started(step).await;
            let mut report = match step {
                Step::StartApp => self.start_app(&cancel).await,
                Step::RestoreLrs => self.restore(&cancel).await,
                Step::ReactivateDeployments => self.reactivate(&cancel).await,
                Step::Verify => self.verify(&cancel).await,
                other => unreachable!("{} is not a step of recover", other.name()),
            };
            journal.finished(&mut report, started).await;
            outcome.steps.push(report);
        }
        outcome.conclude();
        outcome.journal = journal.path();
        if outcome.result != RunResult::Succeeded || args.dry_run {
            let mut words = vec![format!(
                "kubectl mlbackup recover {}",
                shell_word(&self.backup.name)
            )];
            if args.existing == crate::cli::ExistingPolicy::Update {
                words.push("--existing=update".into());
            }
            if args.skip_deployments {
                words.push("--skip-deployments".into());
            }
            words.extend(super::same_target_flags(
                self.global,
                Some(self.root),
                (!args.skip_deployments).then_some(&args.datarobot),
            ));
            outcome.next = Some(words.join(" "));
        }
        outcome
    }

    async fn restore(&self, cancel: &tokio_util::sync::CancellationToken) -> StepReport {
        let options = RestoreOptions {
            existing: self.args.existing,
            only: Vec::new(),
            types: Vec::new(),
            exclude_types: vec![SPARK_TYPE.to_string()],
            namespace_map: Vec::new(),
            create_namespaces: false,
            dry_run: self.args.dry_run.then_some(DryRun::Client),
            skip_invalid: false,
            namespace: None,
        };
        match restore::restore(
            self.cluster,
            self.resource,
            self.backup,
            &options,
            cancel,
            self.printer,
        )
        .await
        {
            Ok(finished) => super::restore_report(finished),
            Err(err) => StepReport::from_error(Step::RestoreLrs, &err),
        }
    }

    /// The DataRobot API: reached up front, or (with --start-app) on first use.
    async fn api(&self) -> anyhow::Result<Option<&Api>> {
        if self.api.is_some() || !self.wants_api {
            return Ok(self.api);
        }
        let api = self
            .late_api
            .get_or_try_init(|| {
                connect_to_datarobot(
                    self.global,
                    &self.args.datarobot,
                    Some(self.cluster),
                    self.env,
                    self.printer,
                )
            })
            .await?;
        Ok(Some(api))
    }

    async fn start_app(&self, cancel: &tokio_util::sync::CancellationToken) -> StepReport {
        let namespace = self
            .cluster
            .app_namespace(self.args.datarobot.pod.app_namespace.as_deref(), self.env);
        let started = super::run_app(
            self.cluster,
            crate::commands::app::Action::Start,
            namespace,
            self.args.dry_run,
            self.args.timeout,
            self.printer,
        );
        let outcome = tokio::select! {
            outcome = started => outcome,
            () = cancel.cancelled() => {
                Err(crate::exit::Interrupted("interrupted while starting the app".into()).into())
            }
        };
        super::app_report(Step::StartApp, outcome)
    }

    async fn reactivate(&self, cancel: &tokio_util::sync::CancellationToken) -> StepReport {
        let api = match self.api().await {
            Ok(Some(api)) => api,
            Ok(None) => {
                return StepReport::new(
                    Step::ReactivateDeployments,
                    StepResult::Skipped,
                    "no DataRobot connection",
                );
            }
            Err(err) => return StepReport::from_error(Step::ReactivateDeployments, &err),
        };
        super::change_deployments(
            Step::ReactivateDeployments,
            api,
            super::SnapshotAt {
                path: self.snapshot.clone(),
                bucket: None,
            },
            self.args.dry_run,
            self.args.timeout,
            cancel,
            self.printer,
        )
        .await
    }

    /// The backup against the cluster (Spark sessions apart), and every deployment recorded
    /// active checked active. Reads only.
    async fn verify(&self, cancel: &tokio_util::sync::CancellationToken) -> StepReport {
        let work = async {
            let diff = diff::compare_with_cluster(self.cluster, self.resource, self.backup, &[])
                .await
                .context("cannot compare the backup with the cluster")?;
            let deployments = match (self.api().await?, &self.snapshot) {
                (Some(api), Some(path)) => {
                    let snapshot = Snapshot::read(path)?.unwrap_or_else(|| Snapshot {
                        format_version: mlbackup_helper::snapshot::SNAPSHOT_FORMAT_VERSION,
                        api_url: String::new(),
                        taken_at: chrono::Utc::now(),
                        updated_at: None,
                        deployments: Vec::new(),
                    });
                    let current = api.list(cancel, Some(self.args.timeout)).await?;
                    Some((snapshot, current))
                }
                _ => None,
            };
            anyhow::Ok((diff, deployments))
        };
        let (diff, deployments) = tokio::select! {
            result = work => match result {
                Ok(found) => found,
                Err(err) => return StepReport::from_error(Step::Verify, &err),
            },
            () = cancel.cancelled() => {
                let err = anyhow::Error::new(crate::exit::Interrupted("interrupted while verifying".into()));
                return StepReport::from_error(Step::Verify, &err);
            }
        };
        let mut differences = Vec::new();
        let mut spark_not_restored = 0;
        for item in &diff.items {
            match item.status {
                DiffStatus::Same => {}
                DiffStatus::Missing if item.r#type == SPARK_TYPE => spark_not_restored += 1,
                status => differences.push(format!(
                    "LRS {}/{}: {}",
                    item.namespace,
                    item.name,
                    match status {
                        DiffStatus::Missing => "missing in the cluster",
                        DiffStatus::Differs =>
                            "differs from the backup (see `kubectl mlbackup diff`)",
                        _ => "in the cluster, not in the backup",
                    }
                )),
            }
        }
        let lrs_differences = differences.len();
        let (mut recorded_active, mut active) = (0, 0);
        if let Some((snapshot, current)) = &deployments {
            for entry in snapshot.deployments.iter().filter(|e| e.was_active()) {
                recorded_active += 1;
                match current.iter().find(|d| d.id == entry.id) {
                    Some(now)
                        if mlbackup_helper::api::TargetStatus::Active.is(now.status.as_deref()) =>
                    {
                        active += 1
                    }
                    Some(now) => differences.push(format!(
                        "deployment {} ({}): {}, was active",
                        entry.id,
                        entry.label,
                        now.status.as_deref().unwrap_or("no status")
                    )),
                    None => differences.push(format!(
                        "deployment {} ({}): no longer visible, was active",
                        entry.id, entry.label
                    )),
                }
            }
        }
        let mut summary = format!(
            "{} of {} LRS objects as in the backup",
            diff.summary.same,
            diff.items.len() - diff.summary.extra
        );
        if spark_not_restored > 0 {
            summary.push_str(&format!(
                " ({spark_not_restored} Spark sessions deleted on purpose)"
            ));
        }
        if deployments.is_some() {
            summary.push_str(&format!(
                "; {active} of {recorded_active} deployments recorded active are active"
            ));
        }
        if !differences.is_empty() {
            summary.push_str(&format!("; {} still different", differences.len()));
        }
        let result = match (differences.is_empty(), self.args.dry_run) {
            (_, true) => StepResult::DryRun,
            (true, false) => StepResult::Done,
            (false, false) => StepResult::Failed,
        };
        let mut report = StepReport::new(Step::Verify, result, summary);
        report.counts = [
            ("lrsSame", diff.summary.same),
            ("lrsDifferent", lrs_differences),
            ("sparkNotRestored", spark_not_restored),
            ("deploymentsRecordedActive", recorded_active),
            ("deploymentsActive", active),
        ]
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        report.errors = differences;
        report.detail = serde_json::to_value(&diff).ok();
        report
    }
}
