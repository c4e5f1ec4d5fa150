//! `delete`: removes one backup, after confirmation, and never anything that is not a backup.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::cli::DeleteArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{self, Consent, Printer, Render};
use crate::store::{self, Read};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOutcome {
    pub name: String,
    pub path: PathBuf,
    pub freed_bytes: u64,
}

impl Render for DeleteOutcome {
    fn render(&self) -> String {
        format!(
            "Deleted backup {} ({} freed).\n",
            self.name,
            printer::size(self.freed_bytes)
        )
    }
}

pub async fn run(args: &DeleteArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    let context = || format!("cannot delete the backup `{}`", args.name);
    store
        .check_writable("delete backups")
        .with_context(context)?;
    let found = store
        .find(&args.name, Read::Manifest)
        .await
        .with_context(context)?;
    let backup = &found.backup;
    if !args.yes {
        let consent = Consent {
            what: format!("delete the backup `{}`", backup.name),
            hint: "pass --yes to delete without being asked",
            declined: "not deleted: the deletion was not confirmed",
        };
        printer.consent(env.stdin_is_terminal, consent, || {
            let summary = store::summary(&found).with_context(context)?;
            Ok(format!(
                "Delete the backup {} ({}, {} LRS, {}) in {}?",
                backup.name,
                summary.status.as_str(),
                summary.lrs_count,
                printer::size(summary.size_bytes),
                found.shown.display()
            ))
        })?;
    }
    let name = backup.name.clone();
    let path = found.shown.clone();
    let freed_bytes = store.delete(found).await.with_context(context)?;
    printer.data(&DeleteOutcome {
        name,
        path,
        freed_bytes,
    })?;
    Ok(Exit::Success)
}
