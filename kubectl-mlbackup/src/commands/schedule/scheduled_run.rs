//! `scheduled-run` (hidden): what a scheduled Job's container runs. `backup` of every LRS type
//! into the location, then, when the schedule has retention rules, `prune --yes` with them; in
//! one process, because the image (FROM scratch) has no shell to chain two commands, and one
//! container keeps the pod's log and exit code the run's. Each step is the command itself,
//! parsed from the same flags a person would type, so the schedule runs exactly what the README
//! documents.

use std::ffi::OsString;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Parser;
use mlbackup_helper::text::escape_controls;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::render::retention_flags;
use crate::cli::{BackupArgs, Cli, Command, GlobalArgs, PruneArgs, ScheduledRunArgs};
use crate::commands::{backup, prune};
use crate::env::Env;
use crate::exit::{Exit, Interrupted, UsageError};
use crate::printer::Printer;
use crate::store::{LockRecord, Store};

/// The command lines of the two steps (the program name first, as clap expects).
pub fn steps(args: &ScheduledRunArgs) -> (Vec<OsString>, Option<Vec<OsString>>) {
    let program = OsString::from("kubectl-mlbackup");
    let mut backup: Vec<OsString> = vec![
        program.clone(),
        "backup".into(),
        "--all-types".into(),
        "--dir".into(),
        args.dir.clone().into(),
    ];
    if let Some(file) = &args.recipients_file {
        backup.extend(["--recipients-file".into(), file.clone().into()]);
    }
    let retention = retention_flags(&args.retention);
    let prune = (!retention.is_empty()).then(|| {
        let mut prune: Vec<OsString> = vec![
            program,
            "prune".into(),
            "--dir".into(),
            args.dir.clone().into(),
        ];
        prune.extend(retention.into_iter().map(OsString::from));
        if let Some(zone) = &args.time_zone {
            prune.extend(["--time-zone".into(), zone.into()]);
        }
        prune.push("--yes".into());
        prune
    });
    (backup, prune)
}

fn parse(argv: Vec<OsString>) -> anyhow::Result<Command> {
    Cli::try_parse_from(&argv)
        .map(|cli| cli.command)
        .map_err(|err| {
            UsageError {
                message: format!(
                    "this plugin cannot run the step `{}`: {}",
                    argv.iter()
                        .skip(1)
                        .map(|a| a.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" "),
                    err.kind()
                ),
                hint: "the schedule was installed by a newer plugin than the image holds: \
                       install it again with an --image of the same version"
                    .into(),
            }
            .into()
        })
}

/// The run records' files under `.mlbackup-runs/SCHEDULE/` in the location.
pub const LAST_ATTEMPT: &str = "last-attempt.json";
pub const LAST_SUCCESS: &str = "last-success.json";

/// How a run went, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

/// A run record (`last-attempt.json`, `last-success.json`): written by the run itself into the
/// location, so that `schedule status` knows what happened there even after Kubernetes removed
/// the Job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub schedule: String,
    /// The pod that ran it.
    pub holder: String,
    pub started: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    pub status: RunStatus,
    /// The backup it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Why it failed, control characters escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a run record serialises")
    }
}

/// Runs the steps under the location's lock, with a run record at the start and at the end;
/// the lock is released whatever happened (the steps' Ctrl-C included: they stop cleanly).
pub async fn run(
    global: &GlobalArgs,
    args: &ScheduledRunArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (backup_argv, prune_argv) = steps(args);
    let Command::Backup(backup_args) = parse(backup_argv)? else {
        unreachable!("the first step is a backup");
    };
    let prune_args = match prune_argv.map(parse).transpose()? {
        Some(Command::Prune(prune_args)) => Some(prune_args),
        Some(_) => unreachable!("the second step is a prune"),
        None => None,
    };
    let store = Store::open(Some(&args.dir), false, env)?;
    let started = Utc::now();
    let holder = format!(
        "{} (pid {})",
        env.in_cluster.hostname.as_deref().unwrap_or("unknown host"),
        std::process::id()
    );
    let lease = chrono::TimeDelta::from_std(args.lease).unwrap_or(chrono::TimeDelta::MAX);
    let lock = store
        .lock(
            LockRecord {
                holder: holder.clone(),
                started,
                lease_until: started
                    .checked_add_signed(lease)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            },
            started,
        )
        .await
        .context("cannot start the scheduled run")?;
    // From here on Ctrl-C stops the steps cleanly instead of ending the process: the lock is
    // released below.
    let cancel = crate::commands::interrupt_token();
    crate::commands::warn_if_taken_over(printer, &store, &lock);
    let mut record = RunRecord {
        schedule: args.name.clone(),
        holder,
        started,
        finished: None,
        status: RunStatus::Running,
        backup: None,
        error: None,
    };
    let result = match store
        .write_run_record(&args.name, LAST_ATTEMPT, record.bytes())
        .await
        .context("cannot write the run record")
    {
        Ok(()) => {
            run_steps(
                global,
                &backup_args,
                prune_args.as_ref(),
                &cancel,
                env,
                printer,
            )
            .await
        }
        Err(err) => Err(err),
    };
    record.finished = Some(Utc::now());
    match &result {
        Ok((exit, backup)) => {
            record.backup.clone_from(backup);
            record.status = match exit {
                Exit::Success => RunStatus::Succeeded,
                Exit::Interrupted => RunStatus::Interrupted,
                _ => RunStatus::Failed,
            };
        }
        Err(err) => {
            record.status = match crate::exit::exit_for(err) {
                Exit::Interrupted => RunStatus::Interrupted,
                _ => RunStatus::Failed,
            };
            record.error = Some(escape_controls(&format!("{err:#}")).into_owned());
        }
    }
    let recorded = finish_records(&store, &record).await;
    let released = lock.release().await;
    if let Ok(false) = released {
        printer.warning(&format!(
            "the lock of {} was no longer this run's (its lease had passed and another run \
             took it over): left to that run",
            store.shown().display()
        ));
    }
    let exit = result?.0;
    recorded?;
    released.context("cannot release the lock")?;
    Ok(exit)
}

/// The last attempt's record, and on success the last success's.
async fn finish_records(store: &Store, record: &RunRecord) -> anyhow::Result<()> {
    let context = "cannot write the run record";
    store
        .write_run_record(&record.schedule, LAST_ATTEMPT, record.bytes())
        .await
        .context(context)?;
    if record.status == RunStatus::Succeeded {
        store
            .write_run_record(&record.schedule, LAST_SUCCESS, record.bytes())
            .await
            .context(context)?;
    }
    Ok(())
}

/// `backup`, then `prune` when it succeeded; the exit and the backup written.
async fn run_steps(
    global: &GlobalArgs,
    backup_args: &BackupArgs,
    prune_args: Option<&PruneArgs>,
    cancel: &CancellationToken,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<(Exit, Option<String>)> {
    let (exit, name) = backup::run_named(global, backup_args, env, printer).await?;
    if exit != Exit::Success {
        return Ok((exit, name));
    }
    let Some(prune_args) = prune_args else {
        return Ok((exit, name));
    };
    if cancel.is_cancelled() {
        return Err(Interrupted("interrupted after the backup; nothing was pruned".into()).into());
    }
    // `prune` does not watch Ctrl-C itself: it is dropped at its next request, as it would be
    // when run alone (a delete cut short is recognised and finished by the next prune).
    tokio::select! {
        exit = prune::run(prune_args, env, printer) => Ok((exit?, name)),
        () = cancel.cancelled() => {
            Err(Interrupted("interrupted while pruning; run it again to finish".into()).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::ScheduleRetentionArgs;

    fn args(time_zone: Option<&str>, retention: ScheduleRetentionArgs) -> ScheduledRunArgs {
        ScheduledRunArgs {
            dir: "s3://backups/prod".into(),
            name: "mlbackup".into(),
            lease: Duration::from_secs(3600),
            recipients_file: Some("/etc/mlbackup/recipients/recipients.txt".into()),
            retention,
            time_zone: time_zone.map(str::to_string),
        }
    }

    fn text(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_prune_step_counts_days_in_the_schedules_time_zone() {
        let retention = ScheduleRetentionArgs {
            keep_daily: Some(7),
            keep_within: Some(Duration::from_secs(2 * 86400)),
            ..Default::default()
        };
        let (backup, prune) = steps(&args(Some("Europe/Berlin"), retention.clone()));
        assert_eq!(
            text(&backup),
            [
                "kubectl-mlbackup",
                "backup",
                "--all-types",
                "--dir",
                "s3://backups/prod",
                "--recipients-file",
                "/etc/mlbackup/recipients/recipients.txt"
            ]
        );
        let prune = prune.expect("retention rules make a prune step");
        assert_eq!(
            text(&prune),
            [
                "kubectl-mlbackup",
                "prune",
                "--dir",
                "s3://backups/prod",
                "--keep-daily",
                "7",
                "--keep-within",
                "2d",
                "--time-zone",
                "Europe/Berlin",
                "--yes"
            ]
        );
        // The steps parse as the commands a person would type, the zone included.
        let Command::Prune(parsed) = parse(prune).unwrap() else {
            panic!("not a prune");
        };
        assert_eq!(
            parsed
                .time_zone
                .map(|tz| tz.iana_name().map(str::to_string)),
            Some(Some("Europe/Berlin".to_string()))
        );
        // Without --time-zone at install, prune keeps its default (the pod's zone).
        let (_, prune) = steps(&args(None, retention));
        assert!(!text(&prune.unwrap()).contains(&"--time-zone".to_string()));
        // Without retention rules there is no prune step, zone or not.
        let (_, prune) = steps(&args(
            Some("Europe/Berlin"),
            ScheduleRetentionArgs::default(),
        ));
        assert!(prune.is_none());
    }
}
