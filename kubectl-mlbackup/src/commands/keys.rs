//! The keys of encryption at rest as the flags and the environment give them: the recipients a
//! new backup is encrypted to (with the rule that a remote one must be), and the identities that
//! open an encrypted backup, checked before any change. Shared by every command that writes or
//! reads backups.

use anyhow::Context;

use crate::cli::{EncryptArgs, IdentityArgs, RecipientArgs};
use crate::encryption::{self, EncryptionError, Identities, Recipients};
use crate::env::Env;
use crate::exit::UsageError;
use crate::folder::Backup;
use crate::location::Location;
use crate::printer::Printer;

/// The recipients of `--recipient` and `--recipients-file`, else of
/// `MLBACKUP_RECIPIENTS_FILE`; `None` when none is given.
pub fn recipients(args: &RecipientArgs, env: &Env) -> anyhow::Result<Option<Recipients>> {
    let files = if args.recipients.is_empty() && args.recipients_files.is_empty() {
        env.recipients_file.iter().cloned().collect()
    } else {
        args.recipients_files.clone()
    };
    const CONTEXT: &str = "cannot read the recipients to encrypt to";
    Recipients::from_keys_and_files(&args.recipients, &files).map_err(|err| {
        // A key that is no recipient is a usage error (exit 2); a file that cannot be read is
        // a failure (exit 1).
        let usage = !matches!(
            err,
            encryption::EncryptionError::Unreadable { .. }
                | encryption::EncryptionError::TooLarge { .. }
        );
        match (usage, err.hint()) {
            (true, Some(hint)) => anyhow::Error::new(err).context(crate::exit::UsageError {
                message: CONTEXT.into(),
                hint,
            }),
            _ => anyhow::Error::new(err).context(CONTEXT),
        }
    })
}

/// What a new backup at `location` is encrypted to, by the flags and the environment; refused
/// (before anything is written) when a remote backup would be unencrypted without
/// `--no-encrypt`. `--no-encrypt` also sets `MLBACKUP_RECIPIENTS_FILE` aside.
pub fn recipients_for_backup(
    args: &EncryptArgs,
    env: &Env,
    location: &Location,
) -> anyhow::Result<Option<Recipients>> {
    let recipients = if args.no_encrypt {
        None
    } else {
        recipients(&args.to, env)?
    };
    // A usage error (exit 2), like any flag missing for what was asked.
    encryption::check_remote_encryption(location, recipients.as_ref(), args.no_encrypt).map_err(
        |err| crate::exit::UsageError {
            message: err.to_string(),
            hint: err.hint().unwrap_or_default(),
        },
    )?;
    Ok(recipients)
}

/// The identities of `--identity`, else of `MLBACKUP_IDENTITY_FILE` (none: empty), with one
/// warning per file that other users can read.
pub fn identities(args: &IdentityArgs, env: &Env, printer: &Printer) -> anyhow::Result<Identities> {
    let files = if args.identity_files.is_empty() {
        env.identity_file.iter().cloned().collect()
    } else {
        args.identity_files.clone()
    };
    let (identities, warnings) =
        Identities::read_files(&files).context("cannot read the identity to decrypt with")?;
    for warning in warnings {
        printer.warning(&warning.to_string());
    }
    Ok(identities)
}

/// `backup` opened with the identities of the flags. When it is encrypted and `required` (the
/// command reads its objects), an identity for one of its recipients must be among them: a
/// missing one is a usage error (exit 2), a wrong one an error (exit 1), both naming the
/// recipients, before anything else happens.
pub fn open_backup(
    backup: Backup,
    args: &IdentityArgs,
    env: &Env,
    printer: &Printer,
    required: bool,
) -> anyhow::Result<Backup> {
    let identities = identities(args, env, printer)?;
    if let Some(recipients) = backup.recipients()
        && (required || !identities.is_empty())
    {
        match identities.check_opens(recipients) {
            Ok(()) => {}
            Err(err @ EncryptionError::NoIdentity { .. }) => {
                return Err(UsageError {
                    message: format!("the backup `{}` is encrypted: {err}", backup.name),
                    hint: err.hint().unwrap_or_default(),
                }
                .into());
            }
            Err(err) => {
                return Err(anyhow::Error::new(err)
                    .context(format!("cannot decrypt the backup `{}`", backup.name)));
            }
        }
    }
    Ok(backup.with_identities(identities))
}
