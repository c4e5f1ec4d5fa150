//! Encryption at rest (DESIGN.md section 11) with age: the recipients a backup is sealed to, the
//! identities that open it, one item's bytes sealed and opened, and what `manifest.json`
//! records about it. Nothing here prints: warnings are returned as data, and key material never
//! appears in Debug, Display or an error.
//!
//! The files are age v1 in its binary form, what `age -r` writes and `age -d` reads, so a team
//! can always open a backup with the `age` tool alone.

mod identities;
#[cfg(test)]
mod interop;
mod policy;
mod recipients;
mod record;
mod seal;

use std::path::PathBuf;

use age::secrecy::zeroize::Zeroizing;

pub use identities::Identities;
pub use policy::{check_remote_copy, check_remote_encryption};
pub use recipients::Recipients;
pub use record::{EncryptionRecord, ItemHashes, Scheme};
#[cfg(test)]
pub use seal::encrypt;
pub use seal::{decrypt, encrypt_batch, rekey};

/// `.age`, appended to an item's file name once it is encrypted (`ns/name.yaml.age`).
pub const FILE_SUFFIX: &str = ".age";

/// What went wrong reading keys, sealing or opening an item. Never carries key material: a bad
/// line of a key file is named by its file and line number, not quoted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("{origin} is not an age recipient ({reason}); expected a public key `age1...`")]
    InvalidRecipient {
        origin: String,
        reason: &'static str,
    },

    #[error("{origin} is a secret key (an age identity), not a recipient")]
    SecretKeyAsRecipient { origin: String },

    #[error("{origin} is {kind} recipient, which this tool does not support")]
    UnsupportedRecipient { origin: String, kind: &'static str },

    #[error("the recipients file {} lists no recipient", path.display())]
    NoRecipientInFile { path: PathBuf },

    #[error("cannot read the {what} file {}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the {what} file {} is larger than {limit} bytes; it cannot be a key file", path.display())]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        limit: u64,
    },

    #[error("{}:{line} is not an age identity ({reason})", path.display())]
    InvalidIdentity {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },

    #[error("the identity file {} holds {kind}, which this tool does not read", path.display())]
    UnsupportedIdentityFile { path: PathBuf, kind: &'static str },

    #[error("the identity file {} holds no identity", path.display())]
    NoIdentityInFile { path: PathBuf },

    #[error(
        "the data is encrypted to {}, and no identity was given",
        list(recipients)
    )]
    NoIdentity { recipients: Vec<String> },

    #[error(
        "no identity given can open the data: it is encrypted to {}, the identities given are \
         for {}",
        list(recipients),
        list(identities)
    )]
    NoMatchingIdentity {
        /// The public keys the data was sealed to (from the manifest).
        recipients: Vec<String>,
        /// The public keys of the identities given.
        identities: Vec<String>,
    },

    #[error("the data is not an age file")]
    NotAge,

    #[error("the data is encrypted with a passphrase, which this tool does not use")]
    Passphrase,

    #[error("the data is damaged or was tampered with: {reason}")]
    Damaged { reason: String },

    #[error(
        "the decrypted data has sha256 {actual}, not the {expected} recorded for it: it was \
         changed after it was encrypted"
    )]
    PlaintextMismatch { expected: String, actual: String },

    #[error("cannot encrypt: {reason}")]
    Encrypt { reason: String },

    #[error("a backup to {location} must be encrypted, and no recipient was given")]
    UnencryptedRemote { location: String },

    #[error("a backup copied to {location} must be encrypted, and `{name}` is not")]
    UnencryptedCopy { name: String, location: String },
}

impl EncryptionError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            EncryptionError::InvalidRecipient { .. } => Some(
                "a recipient is the public key that `age-keygen` prints (`Public key: age1...`); \
                 `age-keygen -y IDENTITY_FILE` prints it again"
                    .into(),
            ),
            EncryptionError::SecretKeyAsRecipient { .. } => Some(
                "give its public key instead (`age-keygen -y IDENTITY_FILE` prints it), and keep \
                 the secret key out of command lines and shared files"
                    .into(),
            ),
            EncryptionError::UnsupportedRecipient { .. } => Some(
                "use X25519 keys made by `age-keygen` (public keys `age1...`, one per person or \
                 team)"
                    .into(),
            ),
            EncryptionError::UnsupportedIdentityFile { .. }
            | EncryptionError::InvalidIdentity { .. }
            | EncryptionError::NoIdentityInFile { .. } => Some(
                "an identity file is what `age-keygen -o FILE` writes: `AGE-SECRET-KEY-1...` \
                 lines, and `#` comments"
                    .into(),
            ),
            EncryptionError::NoIdentity { .. } => Some(
                "pass --identity FILE (an age identity file, as `age-keygen` writes it) or set \
                 MLBACKUP_IDENTITY_FILE"
                    .into(),
            ),
            EncryptionError::UnencryptedRemote { .. } => Some(format!(
                "pass --recipient age1... or --recipients-file FILE (or set {}) with the team's \
                 public keys; --no-encrypt writes it unencrypted",
                crate::env::MLBACKUP_RECIPIENTS_FILE
            )),
            EncryptionError::UnencryptedCopy { .. } => Some(
                "copy carries a backup as it is: take an encrypted one (backup --recipient \
                 age1...) and copy that; --no-encrypt copies this one unencrypted"
                    .into(),
            ),
            EncryptionError::NoMatchingIdentity { .. } => Some(
                "use the identity file of one of those recipients (`age-keygen -y FILE` prints \
                 the public key of an identity file)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// `a, b, c`, or `none` for an empty list.
fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "none".to_string()
    } else {
        keys.join(", ")
    }
}

/// The most a key file (recipients or identities) may hold: thousands of keys, and a bound on
/// what a path to a device or a huge file makes this read.
const KEY_FILE_LIMIT: u64 = 1 << 20;

/// Reads a key file whole (up to [`KEY_FILE_LIMIT`]) into memory that is wiped when dropped,
/// with the file's permission bits (of the file read, not of a path looked up again).
fn read_key_file(
    path: &std::path::Path,
    what: &'static str,
) -> Result<(Zeroizing<Vec<u8>>, u32), EncryptionError> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    let unreadable = |source| EncryptionError::Unreadable {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    // Room for the whole file up front: a buffer that grew would leave unwiped copies behind.
    let capacity = metadata.len().min(KEY_FILE_LIMIT) as usize + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(KEY_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > KEY_FILE_LIMIT {
        return Err(EncryptionError::TooLarge {
            what,
            path: path.to_path_buf(),
            limit: KEY_FILE_LIMIT,
        });
    }
    Ok((bytes, metadata.permissions().mode()))
}

/// The lines of a key file with their 1-based numbers, surrounding whitespace (and a CR) cut,
/// without blank lines and `#` comments, as age reads recipients and identity files. A file
/// that is not UTF-8 text gives `Err` with the number of the first bad line.
fn key_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, Result<&str, ()>)> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, line)| {
            (
                index + 1,
                std::str::from_utf8(line).map(str::trim).map_err(drop),
            )
        })
        .filter(|(_, line)| !matches!(line, Ok(text) if text.is_empty() || text.starts_with('#')))
}
