//! `prune`: deletes old backups by the rules in its help (keep the N newest complete ones, only
//! older than a given age), never the newest complete backup nor a partial one that may still
//! be written; a dry run unless `--yes`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::PruneArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{BackupSummary, CatalogStatus};
use crate::printer::{self, Printer, Render};
use crate::store::{Read, Store, StoreError};

/// A partial backup younger than this may belong to a backup that is still running.
const PARTIAL_GRACE: Duration = Duration::from_secs(86_400);

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
        if self.dry_run && !self.delete.is_empty() {
            text.push_str("\nNothing was deleted: run again with --yes to delete.\n");
        }
        text
    }
}

/// A backup and why it is deleted or kept.
type Decision<'a> = (&'a BackupSummary, String);

/// The rules, applied to backups sorted newest first; returns (delete, keep).
fn plan(
    backups: &[BackupSummary],
    keep: Option<u32>,
    older_than: Option<Duration>,
    now: DateTime<Utc>,
) -> (Vec<Decision<'_>>, Vec<Decision<'_>>) {
    let mut delete = Vec::new();
    let mut kept = Vec::new();
    let mut complete_seen = 0u32;
    for backup in backups {
        let age = (now - backup.created_at).to_std().unwrap_or(Duration::ZERO);
        let complete = backup.status != CatalogStatus::Partial;
        if complete {
            complete_seen += 1;
        }
        let keep_because = if complete && complete_seen == 1 {
            Some("the newest complete backup".to_string())
        } else if !complete && age < PARTIAL_GRACE {
            Some("partial and younger than a day: it may still be written".to_string())
        } else if let Some(n) = keep.filter(|&n| complete && complete_seen <= n) {
            Some(format!("one of the {n} newest complete backups"))
        } else {
            older_than
                .filter(|&limit| age <= limit)
                .map(|limit| format!("not older than {}", crate::duration::format(limit)))
        };
        match keep_because {
            Some(reason) => kept.push((backup, reason)),
            None => {
                let mut reasons = Vec::new();
                if !complete {
                    reasons.push("partial, older than a day".to_string());
                } else if let Some(n) = keep {
                    reasons.push(format!("not one of the {n} newest complete backups"));
                }
                if let Some(limit) = older_than {
                    reasons.push(format!("older than {}", crate::duration::format(limit)));
                }
                delete.push((backup, reasons.join("; ")));
            }
        }
    }
    (delete, kept)
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
    let (to_delete, to_keep) = plan(&catalog.backups, args.keep, args.older_than, Utc::now());
    let mut outcome = PruneOutcome {
        dir,
        dry_run: !args.yes,
        delete: Vec::new(),
        keep: to_keep.into_iter().map(|(b, r)| entry(b, r)).collect(),
        failed: Vec::new(),
        freed_bytes: 0,
    };
    for (backup, reason) in to_delete {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DAY: i64 = 86_400;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn backup(name: &str, status: CatalogStatus, age_days: f64) -> BackupSummary {
        BackupSummary {
            name: name.to_string(),
            path: PathBuf::from(name),
            status,
            created_at: now() - chrono::Duration::seconds((age_days * DAY as f64) as i64),
            cluster: None,
            lrs_count: 1,
            counts_by_type: BTreeMap::new(),
            size_bytes: 10,
        }
    }

    fn names<'a>(entries: &[Decision<'a>]) -> Vec<&'a str> {
        entries.iter().map(|(b, _)| b.name.as_str()).collect()
    }

    fn sample() -> Vec<BackupSummary> {
        use CatalogStatus::*;
        vec![
            backup("running", Partial, 0.1),
            backup("d1", Complete, 1.0),
            backup("stale-partial", Partial, 2.0),
            backup("d3", Unmanaged, 3.0),
            backup("d10", Complete, 10.0),
            backup("d40", Complete, 40.0),
        ]
    }

    #[test]
    fn keep_counts_complete_backups_only() {
        let backups = sample();
        let (delete, keep) = plan(&backups, Some(2), None, now());
        assert_eq!(names(&delete), ["stale-partial", "d10", "d40"]);
        assert_eq!(names(&keep), ["running", "d1", "d3"]);
    }

    #[test]
    fn older_than_spares_recent_backups() {
        let backups = sample();
        let (delete, _) = plan(
            &backups,
            None,
            Some(Duration::from_secs(7 * DAY as u64)),
            now(),
        );
        assert_eq!(names(&delete), ["d10", "d40"]);
    }

    #[test]
    fn both_rules_must_agree() {
        let backups = sample();
        let week = Duration::from_secs(7 * DAY as u64);
        let (delete, _) = plan(&backups, Some(3), Some(week), now());
        assert_eq!(names(&delete), ["d40"]);
        assert_eq!(
            delete[0].1,
            "not one of the 3 newest complete backups; older than 7d"
        );
    }

    #[test]
    fn the_newest_complete_backup_is_never_pruned() {
        let backups = vec![
            backup("new-partial", CatalogStatus::Partial, 5.0),
            backup("only", CatalogStatus::Complete, 100.0),
        ];
        let (delete, keep) = plan(&backups, None, Some(Duration::from_secs(60)), now());
        assert_eq!(names(&delete), ["new-partial"]);
        assert_eq!(keep[0].1, "the newest complete backup");
    }
}
