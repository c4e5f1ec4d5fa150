//! `copy`: copies a complete, verified backup to another location (folder or bucket, either
//! way), checked again on arrival, complete or invisible there, never over an existing name.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::cli::CopyArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::CatalogStatus;
use crate::printer::{self, Printer, Render};
use crate::store::{self, Read, Store};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyOutcome {
    pub name: String,
    pub from: PathBuf,
    pub to: PathBuf,
    /// LRS files copied (each checked at both ends).
    pub objects: usize,
    pub bytes: u64,
}

impl Render for CopyOutcome {
    fn render(&self) -> String {
        format!(
            "Copied backup {} ({} LRS objects, {}) from {} to {}; verified on arrival.\n",
            self.name,
            self.objects,
            printer::size(self.bytes),
            self.from.display(),
            self.to.display()
        )
    }
}

pub async fn run(args: &CopyArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let context = || format!("cannot copy the backup `{}`", args.name);
    let source = super::open_store(&args.backups, env, printer)?;
    let destination = Store::open_location(args.to.as_os_str(), false, env)
        .context("cannot open the destination")?;
    // Shown once when both are on the same endpoint.
    for warning in &destination.warnings {
        if !source.warnings.contains(warning) {
            printer.warning(warning);
        }
    }
    // Refused before anything is read or sent.
    destination
        .check_writable("copy a backup into it")
        .with_context(context)?;
    destination.check().await.with_context(context)?;
    let found = source
        .find_for_reading(&args.name, Read::Everything)
        .await
        .with_context(context)?;
    if found.backup.status != CatalogStatus::Complete || found.backup.manifest.is_none() {
        anyhow::bail!(
            "{}: only complete backups written by kubectl mlbackup are copied, and `{}` is {}",
            context(),
            found.backup.name,
            found.backup.status.as_str()
        );
    }
    let verification = found.backup.verify().with_context(context)?;
    if let Some(problem) = verification.problems.first() {
        anyhow::bail!(
            "{}: it does not verify ({} problem(s)), first {}: {}",
            context(),
            verification.problems.len(),
            found.locate(&problem.path),
            problem.detail
        );
    }
    // A usage error (exit 2), as for `backup`: the remote rule is the same.
    crate::encryption::check_remote_copy(
        &destination.location(),
        &found.backup.name,
        found.backup.recipients().is_some(),
        args.no_encrypt,
    )
    .map_err(|err| crate::exit::UsageError {
        message: err.to_string(),
        hint: err.hint().unwrap_or_default(),
    })?;
    let summary = store::summary(&found).with_context(context)?;
    let cancel = super::interrupt_token();
    let to = destination
        .receive(&found, &cancel)
        .await
        .with_context(context)?;
    printer.data(&CopyOutcome {
        name: summary.name,
        from: found.shown.clone(),
        to,
        objects: verification.checked,
        bytes: summary.size_bytes,
    })?;
    Ok(Exit::Success)
}
