//! `list`: the backups in the backup directory, newest first.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::cli::ListArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{BackupSummary, ClusterRef, Unreadable};
use crate::printer::{self, Printer, Render};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOutcome {
    pub dir: PathBuf,
    /// Newest first.
    pub backups: Vec<BackupSummary>,
    /// Directories that look meant as backups but cannot be read (also warned about on stderr).
    pub unreadable: Vec<Unreadable>,
}

impl Render for ListOutcome {
    fn render(&self) -> String {
        if self.backups.is_empty() {
            return format!("No backups in {}\n", self.dir.display());
        }
        let rows: Vec<Vec<String>> = self
            .backups
            .iter()
            .map(|backup| {
                vec![
                    backup.name.clone(),
                    printer::time(backup.created_at),
                    backup
                        .cluster
                        .as_ref()
                        .map(cluster_cell)
                        .unwrap_or_else(|| "-".to_string()),
                    backup.lrs_count.to_string(),
                    printer::counts(&backup.counts_by_type),
                    backup.status.as_str().to_string(),
                    printer::size(backup.size_bytes),
                ]
            })
            .collect();
        printer::table(
            &[
                "NAME", "CREATED", "CLUSTER", "LRS", "TYPES", "STATUS", "SIZE",
            ],
            &rows,
        )
    }
}

/// The context (else the server) and, when the manifest has it, the start of the cluster's
/// id: one location can hold the backups of several clusters, and context names differ
/// between operators.
fn cluster_cell(cluster: &ClusterRef) -> String {
    let name = cluster
        .context
        .clone()
        .unwrap_or_else(|| cluster.server.clone());
    match &cluster.id {
        Some(id) => format!("{name} ({})", id.get(..8).unwrap_or(id)),
        None => name,
    }
}

pub async fn run(args: &ListArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    let dir = store.shown();
    let catalog = store
        .catalog()
        .await
        .with_context(|| format!("cannot list the backups in {}", dir.display()))?;
    for unreadable in &catalog.unreadable {
        printer.warning(&format!(
            "skipped {}: {}",
            unreadable.name, unreadable.reason
        ));
    }
    printer.data(&ListOutcome {
        dir,
        backups: catalog.backups,
        unreadable: catalog.unreadable,
    })?;
    Ok(Exit::Success)
}
