//! `prune`: deletes the backups of a directory that no retention rule keeps (the rules and the
//! backups they always keep are in `retention`); a dry run unless `--yes`.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::PruneArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{BackupSummary, CatalogStatus};
use crate::printer::{self, Printer, Render};
use crate::retention::{self, Policy};
use crate::store::{Read, Store, StoreError};

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

pub async fn run(args: &PruneArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
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
        verification(&store, &catalog.backups[index])
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
    for decision in decisions {
        let backup = &catalog.backups[decision.index];
        let reason = decision.reason();
        if decision.keep {
            outcome.keep.push(entry(backup, reason));
            continue;
        }
        let deleted = if args.yes {
            delete_one(&store, backup).await
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
