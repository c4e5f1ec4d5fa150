//! `verify`: checks a backup's files against its manifest (or, without one, that every YAML
//! file is a Kubernetes object); exit 1 with the bad files when anything is wrong.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::cli::VerifyArgs;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{CatalogStatus, Problem};
use crate::printer::{self, Printer, Render};
use crate::store::Read;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOutcome {
    pub name: String,
    pub path: PathBuf,
    pub status: CatalogStatus,
    /// True when there are no problems.
    pub ok: bool,
    /// How many LRS files were checked.
    pub checked: usize,
    /// Sorted by path.
    pub problems: Vec<Problem>,
    /// For an encrypted backup: whether its files were decrypted and their YAML checked too
    /// (an identity was given), or only their ciphertext checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypted: Option<bool>,
}

impl Render for VerifyOutcome {
    fn render(&self) -> String {
        let how = match self.decrypted {
            Some(true) => " (encrypted; decrypted and checked)",
            Some(false) => " (encrypted; ciphertext checked, no identity given to decrypt)",
            None => "",
        };
        if self.ok {
            return format!(
                "Backup {} is intact: {} LRS files checked{how}.\n",
                self.name, self.checked
            );
        }
        let rows: Vec<Vec<String>> = self
            .problems
            .iter()
            .map(|problem| {
                vec![
                    problem.path.clone(),
                    problem.kind.as_str().to_string(),
                    problem.detail.clone(),
                ]
            })
            .collect();
        format!(
            "Backup {} has {} problem(s) ({} LRS files checked{how}):\n{}",
            self.name,
            self.problems.len(),
            self.checked,
            printer::table(&["FILE", "PROBLEM", "DETAIL"], &rows)
        )
    }
}

pub async fn run(args: &VerifyArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    let context = || format!("cannot verify the backup `{}`", args.name);
    let mut found = store
        .find_for_reading(&args.name, Read::Everything)
        .await
        .with_context(context)?;
    // The ciphertext is checked without a key; an identity given must open the backup.
    found.backup = super::keys::open_backup(found.backup, &args.identity, env, printer, false)?;
    let verification = found.backup.verify().with_context(context)?;
    let outcome = VerifyOutcome {
        ok: verification.problems.is_empty(),
        problems: verification
            .problems
            .into_iter()
            .map(|problem| Problem {
                path: found.locate(&problem.path),
                // A bucket's object is missing from the bucket, not from a disk.
                detail: match (found.in_bucket(), problem.kind) {
                    (true, crate::folder::ProblemKind::Missing) => {
                        "listed in the manifest, not in the bucket".into()
                    }
                    _ => problem.detail,
                },
                ..problem
            })
            .collect(),
        name: found.backup.name.clone(),
        path: found.shown.clone(),
        status: found.backup.status,
        checked: verification.checked,
        decrypted: found
            .backup
            .recipients()
            .map(|_| !found.backup.identities.is_empty()),
    };
    printer.data(&outcome)?;
    if outcome.ok {
        Ok(Exit::Success)
    } else {
        anyhow::bail!(
            "the backup `{}` failed verification: {} problem(s)",
            outcome.name,
            outcome.problems.len()
        )
    }
}
