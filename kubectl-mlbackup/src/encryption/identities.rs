//! The identities that open a backup: age identity files (`--identity`, as `age -i`) holding
//! X25519 secret keys, kept in a type whose Debug shows only their public keys.

use std::fmt;
use std::path::{Path, PathBuf};

use age::x25519;

use super::{EncryptionError, key_lines, read_key_file};

/// The X25519 identities read from identity files, each with its public key. Debug prints the
/// public keys only; the secret keys leave this type only into age's decryption.
#[derive(Clone, Default)]
pub struct Identities(Vec<(x25519::Identity, String)>);

/// Something about an identity file the user should hear of, though it can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityWarning {
    /// Other users of the machine can read the secret key (`mode`: the permission bits).
    ReadableByOthers { path: PathBuf, mode: u32 },
}

impl fmt::Display for IdentityWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityWarning::ReadableByOthers { path, mode } => write!(
                f,
                "the identity file {} can be read by other users (mode {:04o}); make it \
                 private with `chmod 600 {}`",
                path.display(),
                mode,
                path.display()
            ),
        }
    }
}

impl Identities {
    /// Reads identity files as `age -i` does: `AGE-SECRET-KEY-1...` lines, blank lines and `#`
    /// comments (what `age-keygen -o FILE` writes). Each file must hold at least one identity;
    /// an identity given twice counts once. Returns a warning for each file that users other
    /// than its owner can read.
    pub fn read_files(
        paths: &[PathBuf],
    ) -> Result<(Identities, Vec<IdentityWarning>), EncryptionError> {
        let mut identities = Identities::default();
        let mut warnings = Vec::new();
        for path in paths {
            let (bytes, mode) = read_key_file(path, "identity")?;
            if mode & 0o044 != 0 {
                warnings.push(IdentityWarning::ReadableByOthers {
                    path: path.clone(),
                    mode: mode & 0o7777,
                });
            }
            let found = parse_file(path, &bytes)?;
            if found.is_empty() {
                return Err(EncryptionError::NoIdentityInFile { path: path.clone() });
            }
            for identity in found {
                let public = identity.to_public().to_string();
                if !identities.0.iter().any(|(_, known)| *known == public) {
                    identities.0.push((identity, public));
                }
            }
        }
        Ok((identities, warnings))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The public keys (`age1...`) of the identities.
    pub fn public_keys(&self) -> Vec<String> {
        self.0.iter().map(|(_, public)| public.clone()).collect()
    }

    /// Whether one of these identities is for one of `recipients` (the public keys a manifest
    /// records), so a command can fail before any change, naming the recipients, when it is
    /// not. X25519 recipients are public keys, so this needs no file.
    pub fn check_opens(&self, recipients: &[String]) -> Result<(), EncryptionError> {
        if self.is_empty() {
            return Err(EncryptionError::NoIdentity {
                recipients: recipients.to_vec(),
            });
        }
        if self.opens(recipients) {
            Ok(())
        } else {
            Err(EncryptionError::NoMatchingIdentity {
                recipients: recipients.to_vec(),
                identities: self.public_keys(),
            })
        }
    }

    pub(super) fn opens(&self, recipients: &[String]) -> bool {
        self.0.iter().any(|(_, public)| recipients.contains(public))
    }

    pub(super) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|(key, _)| key as &dyn age::Identity)
    }

    /// Identities from secret keys in memory, for tests of this module.
    #[cfg(test)]
    pub(super) fn from_keys(keys: &[x25519::Identity]) -> Identities {
        Identities(
            keys.iter()
                .map(|key| (key.clone(), key.to_public().to_string()))
                .collect(),
        )
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("public_keys", &self.public_keys())
            .finish_non_exhaustive()
    }
}

/// The identities of one file. Refuses, by name, the kinds of identity files age knows that
/// this tool does not read (passphrase-protected ones, SSH keys, plugins); a bad line is named
/// by number, never quoted.
fn parse_file(path: &Path, bytes: &[u8]) -> Result<Vec<x25519::Identity>, EncryptionError> {
    let unsupported = |kind| EncryptionError::UnsupportedIdentityFile {
        path: path.to_path_buf(),
        kind,
    };
    if bytes.starts_with(b"age-encryption.org/")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(unsupported(
            "a passphrase-protected identity (decrypt it with `age -d` into a file only you can \
             read)",
        ));
    }
    if bytes.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        || bytes.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
    {
        return Err(unsupported("an SSH private key"));
    }
    let mut identities = Vec::new();
    for (line, text) in key_lines(bytes) {
        let invalid = |reason| EncryptionError::InvalidIdentity {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let text = text.map_err(|()| invalid("not UTF-8 text"))?;
        match text.parse::<x25519::Identity>() {
            Ok(identity) => identities.push(identity),
            Err(_) if text.starts_with("AGE-PLUGIN-") => {
                return Err(unsupported("a plugin identity (AGE-PLUGIN-...)"));
            }
            Err(_) if text.starts_with("AGE-SECRET-KEY-PQ-") => {
                return Err(unsupported("a post-quantum identity"));
            }
            Err(_) if text.starts_with("age1") => {
                return Err(invalid(
                    "it is a public key (a recipient), not a secret key",
                ));
            }
            Err(reason) => return Err(invalid(reason)),
        }
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    /// An identity file as `age-keygen -o` writes it, mode 0600.
    fn keygen_file(dir: &tempfile::TempDir, name: &str) -> (PathBuf, x25519::Identity) {
        let identity = x25519::Identity::generate();
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "# created: 2026-01-05T10:00:00Z\n# public key: {}\n{}\n",
                identity.to_public(),
                identity.to_string().expose_secret()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (path, identity)
    }

    #[test]
    fn identity_files_are_read_with_comments_and_without_warnings_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let (a, alice) = keygen_file(&dir, "alice.txt");
        let (b, bob) = keygen_file(&dir, "bob.txt");
        let (identities, warnings) = Identities::read_files(&[a.clone(), b, a]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            identities.public_keys(),
            [alice.to_public().to_string(), bob.to_public().to_string()]
        );
    }

    #[test]
    fn a_file_others_can_read_gives_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = keygen_file(&dir, "key.txt");
        for mode in [0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let (_, warnings) = Identities::read_files(std::slice::from_ref(&path)).unwrap();
            assert_eq!(
                warnings,
                [IdentityWarning::ReadableByOthers {
                    path: path.clone(),
                    mode,
                }]
            );
            assert_eq!(
                warnings[0].to_string(),
                format!(
                    "the identity file {0} can be read by other users (mode {mode:04o}); make it \
                     private with `chmod 600 {0}`",
                    path.display()
                )
            );
        }
    }

    #[test]
    fn whether_an_identity_opens_what_a_manifest_lists() {
        let dir = tempfile::tempdir().unwrap();
        let (path, alice) = keygen_file(&dir, "alice.txt");
        let (identities, _) = Identities::read_files(&[path]).unwrap();
        let other = x25519::Identity::generate().to_public().to_string();
        let alice = alice.to_public().to_string();
        identities
            .check_opens(&[other.clone(), alice.clone()])
            .unwrap();
        let err = identities
            .check_opens(std::slice::from_ref(&other))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no identity given can open the data: it is encrypted to {other}, the identities \
                 given are for {alice}"
            )
        );
        let err = Identities::default()
            .check_opens(std::slice::from_ref(&other))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the data is encrypted to {other}, and no identity was given")
        );
    }

    #[test]
    fn a_bad_line_is_named_by_number_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, identity) = keygen_file(&dir, "key.txt");
        let secret = identity.to_string().expose_secret().to_string();
        // A secret key cut short: close to a real one, and still secret.
        let damaged = &secret[..secret.len() - 3];
        std::fs::write(&path, format!("# mine\n\n{damaged}\n")).unwrap();
        let err = Identities::read_files(std::slice::from_ref(&path)).unwrap_err();
        assert!(
            matches!(err, EncryptionError::InvalidIdentity { line: 3, .. }),
            "{err:?}"
        );
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(damaged), "{text}");
        }
        assert!(
            err.to_string()
                .starts_with(&format!("{}:3 is not an age identity (", path.display()))
        );
    }

    #[test]
    fn other_kinds_of_identity_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        for (text, expected) in [
            (
                "age-encryption.org/v1\n-> scrypt abc 18\n",
                "passphrase-protected",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n",
                "SSH private key",
            ),
            (
                "AGE-PLUGIN-YUBIKEY-1QYQSZQGPQYQSZQGPQY\n",
                "plugin identity",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Identities::read_files(std::slice::from_ref(&path)).unwrap_err();
            assert!(
                matches!(&err, EncryptionError::UnsupportedIdentityFile { kind, .. }
                    if kind.contains(expected)),
                "{err:?}"
            );
        }
        let public = x25519::Identity::generate().to_public().to_string();
        std::fs::write(&path, format!("{public}\n")).unwrap();
        let err = Identities::read_files(std::slice::from_ref(&path)).unwrap_err();
        assert!(
            err.to_string().contains("a public key (a recipient)"),
            "{err}"
        );
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(
            Identities::read_files(std::slice::from_ref(&path)).unwrap_err(),
            EncryptionError::NoIdentityInFile { .. }
        ));
    }

    #[test]
    fn debug_shows_public_keys_only() {
        let identity = x25519::Identity::generate();
        let identities = Identities::from_keys(std::slice::from_ref(&identity));
        let debug = format!("{identities:?} {identities:#?}");
        assert!(debug.contains(&identity.to_public().to_string()), "{debug}");
        assert!(
            !debug.contains(identity.to_string().expose_secret()),
            "{debug}"
        );
        assert!(!debug.contains("AGE-SECRET-KEY"), "{debug}");
    }
}
