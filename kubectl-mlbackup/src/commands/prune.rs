//! `prune`: deletes the backups of a directory that no retention rule keeps (the rules and the
//! backups they always keep are in `retention`); a dry run unless `--yes`. A prune that deletes
//! holds the location's lock, the one scheduled runs hold, so the two never race.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::PruneArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::exit::Interrupted;
use crate::folder::{BackupSummary, CatalogStatus};
use crate::printer::{self, Printer, Render};
use crate::retention::{self, Policy};
use crate::store::{LockRecord, Read, Store, StoreError};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneOutcome {
    pub dir: PathBuf,
    /// True without `--yes`: `delete` lists what would be deleted.
    pub dry_run: bool,
    /// Deleted (or, in a dry run, to be deleted), newest first.
    pub delete: Vec<PruneEntry>,
    /// Kept, newest first.
    pub keep: Vec<PruneEntry>,
    /// Backups that could not be deleted, with why.
    pub failed: Vec<PruneEntry>,
    pub freed_bytes: u64,
    /// The time zone of the days, weeks and months, when a calendar rule is given.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneEntry {
    pub name: String,
    pub status: CatalogStatus,
    pub created_at: DateTime<Utc>,
    pub size_bytes: u64,
    pub reason: String,
}

impl Render for PruneOutcome {
    fn render(&self) -> String {
        let rows = |entries: &[PruneEntry]| -> Vec<Vec<String>> {
            entries
                .iter()
                .map(|entry| {
                    vec![
                        entry.name.clone(),
                        printer::time(entry.created_at),
                        entry.status.as_str().to_string(),
                        printer::size(entry.size_bytes),
                        entry.reason.clone(),
                    ]
                })
                .collect()
        };
        let headers = ["NAME", "CREATED", "STATUS", "SIZE", "WHY"];
        let mut text = String::new();
        let verb = if self.dry_run {
            "Would delete"
        } else {
            "Deleted"
        };
        if self.delete.is_empty() {
            text.push_str(&format!("Nothing to delete in {}.\n", self.dir.display()));
        } else {
            text.push_str(&format!(
                "{verb} {} backup(s) ({}) in {}:\n",
                self.delete.len(),
                printer::size(self.freed_bytes),
                self.dir.display()
            ));
            text.push_str(&printer::table(&headers, &rows(&self.delete)));
        }
        if !self.failed.is_empty() {
            text.push_str(&format!(
                "\nCould not delete {} backup(s):\n",
                self.failed.len()
            ));
            text.push_str(&printer::table(&headers, &rows(&self.failed)));
        }
        if !self.keep.is_empty() {
            text.push_str(&format!("\nKept {} backup(s):\n", self.keep.len()));
            text.push_str(&printer::table(&headers, &rows(&self.keep)));
        }
        if let Some(zone) = &self.time_zone {
            text.push_str(&format!("\nDays, weeks and months are those of {zone}.\n"));
        }
        if self.dry_run && !self.delete.is_empty() {
            text.push_str("\nNothing was deleted: run again with --yes to delete.\n");
        }
        text
    }
}

fn entry(backup: &BackupSummary, reason: String) -> PruneEntry {
    PruneEntry {
        name: backup.name.clone(),
        status: backup.status,
        created_at: backup.created_at,
        size_bytes: backup.size_bytes,
        reason,
    }
}

/// Whether a backup verifies; if not, why in a few words (`verify NAME` lists the problems).
/// A bucket's backup is read into a private mirror first; retention asks newest first and stops
/// at the first that verifies, so usually one backup is read.
fn verification(store: &Store, backup: &BackupSummary) -> Result<(), String> {
    let found = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(store.find_for_reading(&backup.name, Read::Everything))
    })
    .map_err(|err| mlbackup_helper::text::error_chain(&err))?;
    let verification = found
        .backup
        .verify()
        .map_err(|err| mlbackup_helper::text::error_chain(&err))?;
    match verification.problems.len() {
        0 => Ok(()),
        n => Err(format!("{n} problem(s)")),
    }
}

/// How long a manual prune's lock holds when the prune cannot release it (killed): past it, the
/// next scheduled run takes it over. A prune that takes longer than this while a scheduled run
/// starts could race it, so it is generous.
const MANUAL_LEASE: chrono::TimeDelta = chrono::TimeDelta::hours(2);

/// `prune` as the user runs it: one that deletes (`--yes`) first takes the location's lock for
/// itself, refused while a scheduled run holds it, and releases it at the end, Ctrl-C included
/// (it stops before the next delete). A manual `backup` takes no lock: it only adds a new name
/// (claimed create-only), which no prune that started before it sees, and a prune that sees
/// it keeps it as a partial younger than a day until its manifest makes it complete.
pub async fn run_manual(args: &PruneArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    if !args.yes {
        return prune(&store, args, printer, None).await;
    }
    store.check_writable("prune backups")?;
    // Taking the lock would create a missing folder: say it is missing instead, as list does.
    if let Some(root) = store.folder()
        && !root.is_dir()
    {
        return Err(anyhow::Error::new(crate::folder::FolderError::NoRoot {
            root: root.to_path_buf(),
        })
        .context(format!("cannot list the backups in {}", root.display())));
    }
    // From here Ctrl-C no longer ends the process at once: the lock is released first.
    let cancel = super::interrupt_token();
    super::SYNCHRONOUS.store(false, std::sync::atomic::Ordering::SeqCst);
    let started = Utc::now();
    let host = env
        .in_cluster
        .hostname
        .clone()
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown host".into());
    let lock = store
        .lock(
            LockRecord {
                holder: format!(
                    "kubectl mlbackup prune on {host} (pid {})",
                    std::process::id()
                ),
                started,
                lease_until: started + MANUAL_LEASE,
            },
            started,
        )
        .await
        .context("cannot prune: nothing was deleted")?;
    super::warn_if_taken_over(printer, &store, &lock);
    let result = if cancel.is_cancelled() {
        Err(Interrupted("interrupted before anything was deleted".into()).into())
    } else {
        prune(&store, args, printer, Some(&cancel)).await
    };
    let released = lock.release().await;
    if let Ok(false) = released {
        printer.warning(&format!(
            "the lock of {} was no longer this prune's (its lease had passed and a scheduled \
             run took it over)",
            store.shown().display()
        ));
    }
    let exit = result?;
    released.context("cannot release the lock")?;
    Ok(exit)
}

/// `prune` as a scheduled run's step, under the lock that run holds.
pub async fn run(args: &PruneArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    prune(&store, args, printer, None).await
}

/// Plans and (with `--yes`) deletes; with `cancel`, stops before the next delete once it is
/// cancelled, and says what was deleted up to there.
async fn prune(
    store: &Store,
    args: &PruneArgs,
    printer: &Printer,
    cancel: Option<&CancellationToken>,
) -> anyhow::Result<Exit> {
    if args.yes {
        store.check_writable("prune backups")?;
    }
    let dir = store.shown();
    let catalog = store
        .catalog()
        .await
        .with_context(|| format!("cannot list the backups in {}", dir.display()))?;
    for unreadable in &catalog.unreadable {
        printer.warning(&format!(
            "skipped {} (never pruned): {}",
            unreadable.name, unreadable.reason
        ));
    }
    let policy = Policy {
        keep_last: args.keep_last,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_within: args.keep_within,
    };
    let time_zone = args
        .time_zone
        .clone()
        .unwrap_or_else(crate::env::local_time_zone);
    let backups: Vec<retention::Backup<'_>> = catalog
        .backups
        .iter()
        .map(|backup| retention::Backup {
            name: &backup.name,
            created_at: backup.created_at,
            complete: backup.status != CatalogStatus::Partial,
        })
        .collect();
    let decisions = retention::plan(&backups, &policy, Utc::now(), &time_zone, |index| {
        verification(store, &catalog.backups[index])
    });
    let mut outcome = PruneOutcome {
        dir,
        dry_run: !args.yes,
        delete: Vec::new(),
        keep: Vec::new(),
        failed: Vec::new(),
        freed_bytes: 0,
        time_zone: policy.uses_calendar().then(|| {
            time_zone
                .iana_name()
                .unwrap_or("the local time zone")
                .to_string()
        }),
    };
    let mut interrupted = false;
    for decision in decisions {
        let backup = &catalog.backups[decision.index];
        let reason = decision.reason();
        if decision.keep {
            outcome.keep.push(entry(backup, reason));
            continue;
        }
        interrupted = interrupted || cancel.is_some_and(CancellationToken::is_cancelled);
        if interrupted {
            outcome.keep.push(entry(
                backup,
                format!("not deleted: interrupted (Ctrl-C) first; {reason}"),
            ));
            continue;
        }
        let deleted = if args.yes {
            delete_one(store, backup).await
        } else {
            Ok(backup.size_bytes)
        };
        match deleted {
            Ok(bytes) => {
                outcome.freed_bytes += bytes;
                outcome.delete.push(entry(backup, reason));
            }
            Err(err) => outcome.failed.push(entry(backup, format!("{err:#}"))),
        }
    }
    printer.data(&outcome)?;
    if interrupted {
        return Err(Interrupted(format!(
            "interrupted: {} backup(s) deleted before Ctrl-C, the rest left as they were (listed \
             as kept); nothing is half-deleted",
            outcome.delete.len()
        ))
        .into());
    }
    if outcome.failed.is_empty() {
        Ok(Exit::Success)
    } else {
        anyhow::bail!("{} backup(s) could not be deleted", outcome.failed.len())
    }
}

async fn delete_one(store: &Store, backup: &BackupSummary) -> Result<u64, StoreError> {
    let found = store.find(&backup.name, Read::Manifest).await?;
    store.delete(found).await
}
