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
    fn a_local_folder_stays_unencrypted_by_default() {
        for text in ["/srv/backups", "./backups", "relative"] {
            check_remote_encryption(&location(text), None, false).unwrap();
        }
        check_remote_encryption(&location("/srv/backups"), Some(&recipients()), false).unwrap();
    }
}
