//! `prepare`: the runbook before an upgrade. Backup of every LRS, then the deployment snapshot
//! and deactivation, then the Spark cleanup, each through the same work function as its
//! standalone command and each recorded in the backup's journal.
//!
//! Resuming (`--resume NAME`) repeats no finished step. Each step is safe to run again: the
//! deactivation merges its snapshot into the one already recorded (what was active before the
//! first run stays recorded active) and a cleanup of nothing deletes nothing. The backup is the
//! exception, and it is never re-taken once complete: it must hold the cluster as it was before
//! anything was changed. It is complete exactly when its folder is (manifest written, `.partial`
//! renamed), whatever the journal says (a crash can fall between the rename and the record),
//! and only a `.partial` folder is taken again. That is safe because the later steps only ever
//! run after the backup completed: a `.partial` backup means nothing was changed yet.
//!
//! A fresh prepare would record the deployments as they are now. After an earlier prepare that
//! deactivated them and was never recovered, that is "all inactive", and its recover would bring
//! back nothing; so a fresh prepare refuses to run while a backup in the same directory holds a
//! deactivation that no recover has undone.

use std::collections::BTreeMap;

use anyhow::Context;

use super::{Journal, RunResult, RunbookOutcome, Step, StepReport, StepResult, shell_word};
use crate::cli::{GlobalArgs, PrepareArgs};
use crate::cluster::Cluster;
use crate::cluster::list::ServedResource;
use crate::cluster::objects;
use crate::commands::Finished;
use crate::commands::backup::{self, BackupOptions};
use crate::commands::spark_cleanup::{self, CleanupOptions};
use crate::commands::{connect_to_datarobot, connect_to_lrs, interrupt_token};
use crate::datarobot::Api;
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::folder::{self, Backup, CatalogStatus, DEPLOYMENTS_FILE, PARTIAL_SUFFIX};
use crate::printer::{Consent, Printer};
use crate::store::{Found, Read, Store};

/// The steps, in order.
pub const STEPS: &[Step] = &[
    Step::Backup,
    Step::DeactivateDeployments,
    Step::SparkCleanup,
    // Last: the deployments step runs the helper in the app's pod.
    Step::StopApp,
];

/// Objects per list request of the backup step.
const PAGE_SIZE: u32 = 500;

/// Where a resumed prepare stands.
struct Resumed {
    /// The complete backup; `None` when only its `.partial` folder exists (to be taken again).
    backup: Option<Found>,
    partial: Option<Found>,
    /// The backup's name, without `.partial`.
    name: String,
    /// Steps whose last record says done.
    done: Vec<String>,
}

impl Resumed {
    async fn read(store: &Store, name: &str) -> anyhow::Result<Resumed> {
        let found = store
            .find(name, Read::Records)
            .await
            .with_context(|| format!("cannot resume the prepare of `{name}`"))?;
        let base = found
            .backup
            .name
            .strip_suffix(PARTIAL_SUFFIX)
            .unwrap_or(&found.backup.name)
            .to_string();
        match found.backup.status {
            CatalogStatus::Complete => {
                let records = found
                    .backup
                    .step_records("prepare")
                    .context("cannot read the journal")?;
                let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
                for record in records {
                    last.insert(record.step.clone(), record.result.clone());
                }
                let done = last
                    .into_iter()
                    .filter(|(_, result)| result.as_deref() == Some(StepResult::Done.as_str()))
                    .map(|(step, _)| step)
                    .collect();
                Ok(Resumed {
                    backup: Some(found),
                    partial: None,
                    name: base,
                    done,
                })
            }
            CatalogStatus::Partial => Ok(Resumed {
                backup: None,
                partial: Some(found),
                name: base,
                done: Vec::new(),
            }),
            CatalogStatus::Unmanaged => Err(UsageError {
                message: format!("`{name}` was not written by kubectl mlbackup: nothing to resume"),
                hint: "resume names the backup of an earlier `kubectl mlbackup prepare`".into(),
            }
            .into()),
        }
    }
}

pub async fn run(
    global: &GlobalArgs,
    args: &PrepareArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let store = crate::commands::open_store(&args.backups, env, printer)?;
    // A folder, or a bucket's prefix (its backups mirrored into private folders to be read).
    let root = store.shown();
    let resumed = match args.resume.as_deref() {
        Some(name) => Some(Resumed::read(&store, name).await?),
        None => None,
    };
    let done: Vec<Step> = STEPS
        .iter()
        .copied()
        .filter(|step| {
            resumed.as_ref().is_some_and(|r| match step {
                Step::Backup => r.backup.is_some(),
                _ => r.done.iter().any(|d| d == step.name()),
            })
        })
        .collect();
    let deactivate = !args.skip_deployments && !done.contains(&Step::DeactivateDeployments);
    if deactivate && resumed.is_none() && !args.dry_run {
        refuse_over_unrecovered(&store).await?;
    }
    // The recipients of the backup step are read (and a remote backup without one refused)
    // before anything else.
    let recipients =
        crate::commands::keys::recipients_for_backup(&args.encrypt, env, &store.location())?;
    // A partial backup is taken again: as encrypted as it was begun, never less.
    if let Some(begun) = resumed
        .as_ref()
        .and_then(|r| r.partial.as_ref())
        .and_then(|p| p.backup.recipients())
        && recipients.is_none()
    {
        return Err(UsageError {
            message: format!(
                "the backup being resumed was begun encrypted to {}, and no recipient was given",
                begun.join(", ")
            ),
            hint: "pass the same --recipient or --recipients-file as the first run".into(),
        }
        .into());
    }
    let (cluster, resource) = connect_to_lrs(global, env, args.resource.as_ref()).await?;
    // Everything that can be refused is checked before the first step: the DataRobot access
    // (and the helper in the app pod) comes before the backup.
    let api = match deactivate {
        true => {
            Some(connect_to_datarobot(global, &args.datarobot, Some(&cluster), env, printer).await?)
        }
        false => None,
    };
    let confirmed = match args.yes || args.dry_run {
        true => Ok(()),
        false => confirm(args, env, printer),
    };
    let outcome = match confirmed {
        Ok(()) => {
            let context = Preparation {
                global,
                env,
                args,
                cluster: &cluster,
                resource: &resource,
                api: api.as_ref(),
                root: &root,
                recipients: recipients.as_ref(),
                store: &store,
                printer,
            };
            Ok(context.steps(resumed, &done).await)
        }
        Err(err) => Err(err),
    };
    let outcome = outcome?;
    printer.data(&outcome)?;
    Ok(outcome.exit())
}

/// Asks once, for all steps; `--yes` is required when no one can answer.
fn confirm(args: &PrepareArgs, env: &Env, printer: &Printer) -> anyhow::Result<()> {
    let mut changes = Vec::new();
    if !args.skip_deployments {
        changes.push("deactivate every active DataRobot deployment (their states recorded first)");
    }
    if !args.skip_spark {
        changes.push("delete every interactive Spark session (LRS of type spark_app)");
    }
    if args.stop_app {
        changes.push("scale the app to 0 (its replica counts recorded)");
    }
    let consent = Consent {
        what: "prepare".to_string(),
        hint: "pass --yes to go ahead without being asked; --dry-run shows the plan with counts",
        declined: "nothing done: prepare was not confirmed",
    };
    printer.consent(env.stdin_is_terminal, consent, || {
        Ok(format!(
            "prepare will back up every LRS, then {}.\nGo ahead?",
            if changes.is_empty() {
                "change nothing else".to_string()
            } else {
                changes.join(", then ")
            }
        ))
    })
}

/// Refuses a fresh prepare while a backup of the location holds a deactivation no recover
/// undid.
async fn refuse_over_unrecovered(store: &Store) -> anyhow::Result<()> {
    let Ok(catalog) = store.catalog().await else {
        return Ok(());
    };
    let root = store.shown();
    for summary in catalog.backups {
        let Ok(found) = store.find(&summary.name, Read::Records).await else {
            continue;
        };
        let backup = &found.backup;
        if !backup.has_file(DEPLOYMENTS_FILE) {
            continue;
        }
        let last_at = |runbook: &str, step: Step, done_only: bool| {
            backup
                .step_records(runbook)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.step == step.name())
                .filter(|r| !done_only || r.result.as_deref() == Some("done"))
                .map(|r| r.started_at)
                .max()
        };
        let deactivated = last_at("prepare", Step::DeactivateDeployments, false);
        let reactivated = last_at("recover", Step::ReactivateDeployments, true);
        if let Some(deactivated) = deactivated
            && reactivated.is_none_or(|r| r < deactivated)
        {
            return Err(UsageError {
                message: format!(
                    "the prepare of `{}` deactivated deployments and was not recovered: a new \
                     prepare would record them as inactive, and its recover would not bring \
                     them back",
                    backup.name
                ),
                hint: format!(
                    "finish that one with `kubectl mlbackup prepare --resume {0}`, or bring \
                     everything back with `kubectl mlbackup recover {0}` first (--dir {1}); or \
                     pass --skip-deployments",
                    backup.name,
                    root.display()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// What every step needs.
struct Preparation<'a> {
    global: &'a GlobalArgs,
    env: &'a Env,
    args: &'a PrepareArgs,
    cluster: &'a Cluster,
    resource: &'a ServedResource,
    api: Option<&'a Api>,
    /// The location as the user names it (a folder, or `s3://BUCKET/PREFIX`).
    root: &'a std::path::Path,
    recipients: Option<&'a crate::encryption::Recipients>,
    store: &'a Store,
    printer: &'a Printer,
}

impl Preparation<'_> {
    fn namespace(&self) -> Option<String> {
        self.global.namespace.clone()
    }

    async fn steps(&self, resumed: Option<Resumed>, done: &[Step]) -> RunbookOutcome {
        let args = self.args;
        let name = resumed
            .as_ref()
            .map(|r| r.name.clone())
            .or(args.name.clone());
        let (complete, partial) = match resumed {
            Some(r) => (r.backup.filter(|_| !args.dry_run), r.partial),
            None => (None, None),
        };
        let complete = complete.map(std::sync::Arc::new);
        let mut journal = Journal {
            runbook: "prepare",
            backup: complete.as_ref().map(|found| found.backup.clone()),
            bucket: complete.filter(|found| found.in_bucket()),
            printer: self.printer,
            total: STEPS.len(),
        };
        let mut partial = partial;
        let mut backup_dir = journal.backup.as_ref().map(|b| b.dir.clone());
        let mut outcome = RunbookOutcome {
            runbook: "prepare",
            backup: name.clone(),
            path: backup_dir.clone(),
            dry_run: args.dry_run,
            result: RunResult::Succeeded,
            steps: Vec::new(),
            journal: None,
            next: None,
        };
        let cancel = interrupt_token();
        let mut stopped = false;
        for &step in STEPS {
            if stopped || cancel.is_cancelled() {
                let result = if cancel.is_cancelled() && !stopped {
                    StepResult::Interrupted
                } else {
                    StepResult::NotRun
                };
                stopped = true;
                outcome.steps.push(StepReport::new(
                    step,
                    result,
                    "not started: an earlier step did not finish",
                ));
                continue;
            }
            let skipped = match step {
                Step::DeactivateDeployments => args.skip_deployments,
                Step::SparkCleanup => args.skip_spark,
                Step::StopApp => !args.stop_app,
                _ => false,
            };
            if skipped {
                let mut report = StepReport::new(step, StepResult::Skipped, "skipped by flag");
                journal.passed(&mut report).await;
                outcome.steps.push(report);
                continue;
            }
            if done.contains(&step) {
                let mut report = StepReport::new(
                    step,
                    StepResult::AlreadyDone,
                    "finished by the interrupted run; not repeated",
                );
                journal.passed(&mut report).await;
                outcome.steps.push(report);
                continue;
            }
            let started = journal.started(step).await;
            let mut report = match step {
                Step::Backup if args.dry_run => self.plan_backup(name.as_deref()).await,
                Step::Backup => {
                    let report = self.backup(name.clone(), partial.take(), &cancel).await;
                    if let Some(path) = report
                        .detail
                        .as_ref()
                        .and_then(|d| d["path"].as_str())
                        .map(std::path::PathBuf::from)
                    {
                        let taken = path.file_name().map(|n| {
                            n.to_string_lossy()
                                .trim_end_matches(PARTIAL_SUFFIX)
                                .to_string()
                        });
                        match self.store.folder() {
                            Some(_) => {
                                journal.backup = Backup::open(&path).ok();
                                backup_dir = Some(path.clone());
                            }
                            // A bucket's complete backup is mirrored (its manifest) so that
                            // the journal and the snapshot are written there and uploaded.
                            None if report.result == StepResult::Done => {
                                if let Some(taken) = &taken {
                                    match self.store.find(taken, Read::Records).await {
                                        Ok(found) => {
                                            journal.backup = Some(found.backup.clone());
                                            backup_dir = Some(found.backup.dir.clone());
                                            journal.bucket = Some(std::sync::Arc::new(found));
                                        }
                                        Err(err) => self.printer.warning(&format!(
                                            "cannot read the backup just taken back from {}: {err}",
                                            path.display()
                                        )),
                                    }
                                }
                            }
                            None => {}
                        }
                        outcome.backup = taken;
                        outcome.path = Some(path);
                    }
                    report
                }
                Step::DeactivateDeployments => {
                    let state = backup_dir.as_ref().map(|dir| dir.join(DEPLOYMENTS_FILE));
                    self.deactivate(state, journal.bucket.clone(), &cancel)
                        .await
                }
                Step::SparkCleanup => self.clean(&cancel).await,
                Step::StopApp => {
                    let namespace = self
                        .cluster
                        .app_namespace(args.datarobot.pod.app_namespace.as_deref(), self.env);
                    let stopped = super::run_app(
                        self.cluster,
                        crate::commands::app::Action::Stop,
                        namespace,
                        args.dry_run,
                        args.timeout,
                        self.printer,
                    );
                    let outcome = tokio::select! {
                        outcome = stopped => outcome,
                        () = cancel.cancelled() => Err(crate::exit::Interrupted("interrupted while stopping the app".into()).into()),
                    };
                    super::app_report(Step::StopApp, outcome)
                }
                other => unreachable!("{} is not a step of prepare", other.name()),
            };
            if step == Step::Backup && journal.backup.is_some() {
                // The backup's own start was before its folder existed: record it now.
                journal.record_started(step, started).await;
            }
            journal.finished(&mut report, started).await;
            stopped = !report.result.is_finished();
            outcome.steps.push(report);
        }
        outcome.conclude();
        outcome.journal = journal.path();
        outcome.next = self.next_command(&outcome);
        outcome
    }

    async fn plan_backup(&self, name: Option<&str>) -> StepReport {
        let namespace = self.namespace();
        let listed = objects::list(self.cluster, self.resource, namespace.as_deref(), "")
            .await
            .context("cannot list the LRS objects");
        let objects = match listed {
            Ok(objects) => objects,
            Err(err) => return StepReport::from_error(Step::Backup, &err),
        };
        let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
        for object in &objects {
            *by_type
                .entry(object.head.lrs_type().to_string())
                .or_insert(0) += 1;
        }
        let types = by_type
            .iter()
            .map(|(t, n)| format!("{} {n}", crate::printer::none_if_empty(t)))
            .collect::<Vec<_>>()
            .join(", ");
        let target = match name {
            Some(name) => self.root.join(name),
            None => self.root.join(folder::default_name(chrono::Local::now())),
        };
        let mut report = StepReport::new(
            Step::Backup,
            StepResult::DryRun,
            format!(
                "{} LRS objects{} would be backed up to {}",
                objects.len(),
                if types.is_empty() {
                    String::new()
                } else {
                    format!(" ({types})")
                },
                target.display()
            ),
        );
        report.counts.insert("objects".into(), objects.len());
        report
    }

    async fn backup(
        &self,
        name: Option<String>,
        partial: Option<Found>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> StepReport {
        if let Some(partial) = partial {
            // An unfinished backup of this prepare: nothing was changed after it, so it is
            // taken again from the start under the same name.
            let path = partial.shown.clone();
            if let Err(err) = self.store.delete(partial).await {
                let err = anyhow::Error::new(err).context(format!(
                    "cannot remove the unfinished backup {} to take it again",
                    path.display()
                ));
                return StepReport::from_error(Step::Backup, &err);
            }
        }
        let options = BackupOptions {
            // Every type, so nothing is missed.
            selector: String::new(),
            namespace: self.namespace(),
            name,
            page_size: PAGE_SIZE,
            recipients: self.recipients.cloned(),
        };
        let taken = backup::take(
            self.cluster,
            self.resource,
            self.store,
            &options,
            cancel,
            self.printer,
        );
        match taken.await {
            Ok(finished) => super::backup_report(finished),
            Err(err) => StepReport::from_error(Step::Backup, &err),
        }
    }

    async fn deactivate(
        &self,
        state: Option<std::path::PathBuf>,
        snapshot_to: Option<std::sync::Arc<Found>>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> StepReport {
        let Some(api) = self.api else {
            return StepReport::new(
                Step::DeactivateDeployments,
                StepResult::Skipped,
                "no DataRobot connection",
            );
        };
        super::change_deployments(
            Step::DeactivateDeployments,
            api,
            super::SnapshotAt {
                path: state,
                bucket: snapshot_to,
            },
            self.args.dry_run,
            self.args.timeout,
            cancel,
            self.printer,
        )
        .await
    }

    async fn clean(&self, cancel: &tokio_util::sync::CancellationToken) -> StepReport {
        let options = CleanupOptions {
            namespace: self.namespace(),
            dry_run: self.args.dry_run,
            wait: true,
            timeout: self.args.timeout,
        };
        // Confirmed once for the whole prepare, up front.
        let approved = |_: &spark_cleanup::CleanupOutcome| Ok(());
        let finished: anyhow::Result<Finished<_>> = spark_cleanup::clean(
            self.cluster,
            self.resource,
            &options,
            approved,
            cancel,
            self.printer,
        )
        .await;
        match finished {
            Ok(finished) => super::cleanup_report(finished),
            Err(err) => StepReport::from_error(Step::SparkCleanup, &err),
        }
    }

    /// `recover` after a finished prepare, `prepare --resume` after an unfinished one; with the
    /// flags that choose the same cluster, backup directory and DataRobot access.
    fn next_command(&self, outcome: &RunbookOutcome) -> Option<String> {
        let args = self.args;
        let name = outcome.backup.as_ref()?;
        let dir = Some(self.root);
        let datarobot = (!args.skip_deployments).then_some(&args.datarobot);
        let mut words: Vec<String> = match outcome.result {
            RunResult::Succeeded if args.dry_run => return None,
            RunResult::Succeeded => vec![format!("kubectl mlbackup recover {}", shell_word(name))],
            RunResult::Failed | RunResult::Interrupted => {
                let mut words = vec![format!(
                    "kubectl mlbackup prepare --resume {}",
                    shell_word(name)
                )];
                if args.skip_deployments {
                    words.push("--skip-deployments".into());
                }
                if args.skip_spark {
                    words.push("--skip-spark".into());
                }
                words
            }
        };
        if let Some(namespace) = &self.global.namespace
            && outcome.result != RunResult::Succeeded
        {
            words.push(format!("-n {}", shell_word(namespace)));
        }
        if args.skip_deployments && outcome.result == RunResult::Succeeded {
            words.push("--skip-deployments".into());
        }
        if args.stop_app {
            words.push(match outcome.result {
                RunResult::Succeeded => "--start-app".into(),
                RunResult::Failed | RunResult::Interrupted => "--stop-app".into(),
            });
        }
        words.extend(super::same_target_flags(self.global, dir, datarobot));
        Some(words.join(" "))
    }
}
