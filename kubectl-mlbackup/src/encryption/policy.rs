//! When a backup must be encrypted: one that leaves this machine (a remote location, a bucket
//! others can read) needs a recipient unless the user said `--no-encrypt`; a local folder stays
//! unencrypted by default.

use crate::location::Location;

use super::{EncryptionError, Recipients};

/// Refuses a backup to a remote `location` that would be written unencrypted (no recipient)
/// without `no_encrypt`. Checked before anything is written.
pub fn check_remote_encryption(
    location: &Location,
    recipients: Option<&Recipients>,
    no_encrypt: bool,
) -> Result<(), EncryptionError> {
    match location {
        Location::S3(_) if recipients.is_none() && !no_encrypt => {
            Err(EncryptionError::UnencryptedRemote {
                location: location.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Refuses to copy the unencrypted backup `name` to a remote `location` without `no_encrypt`:
/// the rule of [`check_remote_encryption`], for a backup that already exists (copy does not
/// re-encrypt).
pub fn check_remote_copy(
    location: &Location,
    name: &str,
    encrypted: bool,
    no_encrypt: bool,
) -> Result<(), EncryptionError> {
    match location {
        Location::S3(_) if !encrypted && !no_encrypt => Err(EncryptionError::UnencryptedCopy {
            name: name.to_string(),
            location: location.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(text: &str) -> Location {
        Location::parse(std::ffi::OsStr::new(text)).unwrap()
    }

    fn recipients() -> Recipients {
        let key = age::x25519::Identity::generate().to_public().to_string();
        Recipients::from_keys_and_files(&[key], &[])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_remote_backup_needs_a_recipient_or_no_encrypt() {
        let bucket = location("s3://team-backups/prod");
        let err = check_remote_encryption(&bucket, None, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a backup to s3://team-backups/prod must be encrypted, and no recipient was given"
        );
        assert!(err.hint().unwrap().contains("--no-encrypt"));
        check_remote_encryption(&bucket, Some(&recipients()), false).unwrap();
        check_remote_encryption(&bucket, None, true).unwrap();
    }

    #[test]
    fn an_unencrypted_backup_is_copied_to_a_bucket_only_with_no_encrypt() {
        let bucket = location("s3://team-backups/prod");
        let err = check_remote_copy(&bucket, "nightly", false, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a backup copied to s3://team-backups/prod must be encrypted, and `nightly` is not"
        );
        check_remote_copy(&bucket, "nightly", true, false).unwrap();
        check_remote_copy(&bucket, "nightly", false, true).unwrap();
        check_remote_copy(&location("/srv/backups"), "nightly", false, false).unwrap();
    }

    #[test]
    fn a_local_folder_stays_unencrypted_by_default() {
        for text in ["/srv/backups", "./backups", "relative"] {
            check_remote_encryption(&location(text), None, false).unwrap();
        }
        check_remote_encryption(&location("/srv/backups"), Some(&recipients()), false).unwrap();
    }
}
