//! `delete`: removes one backup, after confirmation, and never anything that is not a backup.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::cli::DeleteArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::exit::Interrupted;
use crate::printer::{self, Consent, Printer, Render};
use crate::store::{self, Read, Remains};

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
    // With --yes nothing waits at a prompt: Ctrl-C is watched from here (see `watch`).
    let watched = args.yes.then(watch);
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
    let cancel = watched.unwrap_or_else(watch);
    if cancel.is_cancelled() {
        return Err(Interrupted(interrupted(&Remains::Untouched, &name, &store.shown())).into());
    }
    let deleted = tokio::select! {
        biased;
        deleted = store.delete(found) => Some(deleted),
        () = cancel.cancelled() => None,
    };
    let Some(deleted) = deleted else {
        let remains = store
            .remains(&name, &path)
            .await
            .with_context(|| format!("interrupted while deleting the backup `{name}`"))?;
        return Err(Interrupted(interrupted(&remains, &name, &store.shown())).into());
    };
    let freed_bytes = deleted.with_context(context)?;
    printer.data(&DeleteOutcome {
        name: name.clone(),
        path,
        freed_bytes,
    })?;
    // A folder's delete does not wait at a request: a Ctrl-C during it is seen once it is done.
    if cancel.is_cancelled() {
        return Err(Interrupted(interrupted(&Remains::Nothing, &name, &store.shown())).into());
    }
    Ok(Exit::Success)
}

/// From here Ctrl-C no longer ends the process at once (as it does at the prompt): the delete
/// stops at its next request and what is left of the backup is said.
fn watch() -> tokio_util::sync::CancellationToken {
    let cancel = super::interrupt_token();
    super::SYNCHRONOUS.store(false, std::sync::atomic::Ordering::SeqCst);
    cancel
}

/// What a delete cut short by Ctrl-C left, and what to do about it.
fn interrupted(remains: &Remains, name: &str, location: &Path) -> String {
    match remains {
        Remains::Nothing => {
            format!("interrupted, but the backup `{name}` was deleted whole: nothing of it is left")
        }
        Remains::Untouched => {
            format!("interrupted before anything was deleted: the backup `{name}` is untouched")
        }
        Remains::Partial => format!(
            "interrupted: the backup `{name}` is partly deleted; its manifest went first, so it \
             lists as partial and is never read as complete; `kubectl mlbackup delete {name} \
             --dir {} --yes` removes the rest",
            location.display()
        ),
        Remains::Leftover(left) => format!(
            "interrupted: the backup `{name}` is partly deleted; what is left, {}, lists as left \
             over from an interrupted delete and is never read as a backup; remove it with \
             `rm -rf {}`",
            left.display(),
            left.display()
        ),
    }
}
