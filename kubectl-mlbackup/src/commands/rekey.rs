//! `rekey`: re-encrypts an encrypted backup to new recipients (key rotation), in place,
//! verified and atomic (the work is `folder::rekey`).

use anyhow::Context;

use crate::cli::RekeyArgs;
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::folder::{self, RekeyOutcome};
use crate::printer::{Printer, Render};

impl Render for RekeyOutcome {
    fn render(&self) -> String {
        let mut text = format!(
            "Rekeyed backup {}: {} LRS files re-encrypted and verified ({}).\n",
            self.name,
            self.items,
            if self.decrypted_back {
                "decrypted back with the identity given"
            } else {
                "ciphertext checked; no identity of a new recipient was given to decrypt them back"
            }
        );
        text.push_str(&format!(
            "  old recipients: {}\n",
            self.old_recipients.join(", ")
        ));
        text.push_str(&format!(
            "  new recipients: {}\n",
            self.new_recipients.join(", ")
        ));
        text
    }
}

pub fn run(args: &RekeyArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    let root = super::folder_only(&store, "rekey")?.to_path_buf();
    let context = || format!("cannot rekey the backup `{}`", args.name);
    let new = super::keys::recipients(&args.to, env)?.ok_or_else(|| UsageError {
        message: "rekey needs the new recipients".into(),
        hint: format!(
            "pass --recipient age1... or --recipients-file FILE (or set {})",
            crate::env::MLBACKUP_RECIPIENTS_FILE
        ),
    })?;
    let backup = folder::resolve(&root, &args.name).with_context(context)?;
    if backup.recipients().is_none() {
        return Err(anyhow::Error::new(folder::FolderError::NotEncrypted {
            name: backup.name,
        }));
    }
    let backup = super::keys::open_backup(backup, &args.identity, env, printer, true)?;
    let outcome = folder::rekey(&backup, &new).with_context(context)?;
    printer.data(&outcome)?;
    Ok(Exit::Success)
}
