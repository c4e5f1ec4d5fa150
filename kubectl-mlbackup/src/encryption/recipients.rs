//! The recipients a backup is sealed to: age X25519 public keys given one by one
//! (`--recipient`, as `age -r`) or in recipients files (`--recipients-file`, as `age -R`).

use std::fmt;
use std::path::{Path, PathBuf};

use age::x25519;

use super::{EncryptionError, EncryptionRecord, Scheme, key_lines, read_key_file};

/// A non-empty list of distinct X25519 recipients, in the order given. Public keys only, so it
/// prints as the `age1...` strings.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipients(Vec<x25519::Recipient>);

impl Recipients {
    /// The recipients of the `--recipient` values, then of the recipients files in order,
    /// duplicates dropped; `None` when none was given (the backup is not encrypted). A file
    /// that lists no recipient is refused (as `age -R`), so an empty file cannot turn
    /// encryption off unnoticed.
    pub fn from_keys_and_files(
        keys: &[String],
        files: &[PathBuf],
    ) -> Result<Option<Recipients>, EncryptionError> {
        let mut recipients = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let origin = || {
                if keys.len() == 1 {
                    "--recipient".to_string()
                } else {
                    format!("--recipient number {}", index + 1)
                }
            };
            recipients.push(parse(key, origin)?);
        }
        for path in files {
            recipients.extend(read_file(path)?);
        }
        Ok(Recipients::new(recipients))
    }

    fn new(mut keys: Vec<x25519::Recipient>) -> Option<Recipients> {
        let mut seen = std::collections::HashSet::new();
        keys.retain(|key| seen.insert(key.clone()));
        (!keys.is_empty()).then_some(Recipients(keys))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The public keys, `age1...`.
    pub fn keys(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// What `manifest.json` records of them.
    pub fn record(&self) -> EncryptionRecord {
        EncryptionRecord {
            scheme: Scheme::AgeV1,
            recipients: self.keys(),
        }
    }

    pub(super) fn as_age(&self) -> impl Iterator<Item = &dyn age::Recipient> {
        self.0.iter().map(|key| key as &dyn age::Recipient)
    }
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Recipients").field(&self.keys()).finish()
    }
}

/// The recipients of one recipients file: one public key a line, blank lines and `#` comments
/// skipped. A bad line is named by file and line number and never quoted (it could be a secret
/// pasted into the wrong file).
fn read_file(path: &Path) -> Result<Vec<x25519::Recipient>, EncryptionError> {
    let (bytes, _mode) = read_key_file(path, "recipients")?;
    let origin = |line: usize| move || format!("{}:{line}", path.display());
    let mut recipients = Vec::new();
    for (line, text) in key_lines(&bytes) {
        let Ok(text) = text else {
            return Err(EncryptionError::InvalidRecipient {
                origin: origin(line)(),
                reason: "not UTF-8 text",
            });
        };
        recipients.push(parse(text, origin(line))?);
    }
    if recipients.is_empty() {
        return Err(EncryptionError::NoRecipientInFile {
            path: path.to_path_buf(),
        });
    }
    Ok(recipients)
}

/// One recipient; `origin` names where it came from for the error.
fn parse(text: &str, origin: impl Fn() -> String) -> Result<x25519::Recipient, EncryptionError> {
    let text = text.trim();
    let reason = match text.parse::<x25519::Recipient>() {
        Ok(key) => return Ok(key),
        Err(reason) => reason,
    };
    if text
        .get(..15)
        .is_some_and(|p| p.eq_ignore_ascii_case("AGE-SECRET-KEY-"))
    {
        return Err(EncryptionError::SecretKeyAsRecipient { origin: origin() });
    }
    let unsupported = |kind| EncryptionError::UnsupportedRecipient {
        origin: origin(),
        kind,
    };
    if text.starts_with("ssh-") || text.starts_with("ecdsa-sha2-") {
        return Err(unsupported("an SSH"));
    }
    // Two keys on one line (a recipient has no space): not a key of another kind.
    if text.contains(char::is_whitespace) {
        return Err(EncryptionError::InvalidRecipient {
            origin: origin(),
            reason,
        });
    }
    // Bech32: the human-readable part ends at the last `1`. X25519 keys have `age`; the other
    // kinds of age recipients `age1<kind>`.
    match text
        .rsplit_once('1')
        .map(|(hrp, _)| hrp.to_ascii_lowercase())
    {
        Some(hrp) if hrp.starts_with("age1tag") => Err(unsupported("a hardware tag")),
        Some(hrp) if hrp.starts_with("age1pq") => Err(unsupported("a post-quantum")),
        Some(hrp) if hrp.starts_with("age1") => Err(unsupported("a plugin")),
        _ => Err(EncryptionError::InvalidRecipient {
            origin: origin(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn two_keys_on_one_line_are_no_recipient_of_another_kind() {
        let line = format!("{} {}", public(), public());
        let err = parse(&line, || "recipients.txt:1".into()).unwrap_err();
        assert!(
            matches!(err, EncryptionError::InvalidRecipient { .. }),
            "{err}"
        );
    }

    fn public() -> String {
        x25519::Identity::generate().to_public().to_string()
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn keys_and_files_give_every_recipient_once_in_order() {
        let (a, b, c) = (public(), public(), public());
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "team.txt",
            &format!("# the on-call team\n\n{b}\n  {c}  \r\n# {a} left\n{a}\n"),
        );
        let recipients = Recipients::from_keys_and_files(std::slice::from_ref(&a), &[path])
            .unwrap()
            .unwrap();
        assert_eq!(recipients.keys(), [a.clone(), b.clone(), c.clone()]);
        assert_eq!(
            recipients.record(),
            EncryptionRecord {
                scheme: Scheme::AgeV1,
                recipients: vec![a.clone(), b, c]
            }
        );
        assert_eq!(
            format!("{recipients:?}"),
            format!("Recipients({:?})", recipients.keys())
        );
    }

    #[test]
    fn nothing_given_means_no_encryption() {
        assert!(Recipients::from_keys_and_files(&[], &[]).unwrap().is_none());
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line_without_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "team.txt",
            &format!("# team\n{}\n\nage1notakey\n", public()),
        );
        let err = Recipients::from_keys_and_files(&[], std::slice::from_ref(&path)).unwrap_err();
        assert!(
            matches!(&err, EncryptionError::InvalidRecipient { origin, .. }
                if *origin == format!("{}:4", path.display())),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.starts_with(&format!("{}:4 is not an age recipient (", path.display())));
        assert!(!message.contains("notakey"), "{message}");
    }

    #[test]
    fn a_secret_key_given_as_recipient_is_refused_without_showing_it() {
        let secret = x25519::Identity::generate().to_string();
        let secret = secret.expose_secret();
        let err =
            Recipients::from_keys_and_files(&[public(), secret.to_string()], &[]).unwrap_err();
        assert!(matches!(err, EncryptionError::SecretKeyAsRecipient { .. }));
        assert_eq!(
            err.to_string(),
            "--recipient number 2 is a secret key (an age identity), not a recipient"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = file(&dir, "r.txt", &format!("{secret}\n"));
        let err = Recipients::from_keys_and_files(&[], &[path]).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(secret) && text.contains("r.txt:1"), "{text}");
        }
    }

    #[test]
    fn other_kinds_of_recipients_are_named() {
        for (key, kind) in [
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN",
                "an SSH",
            ),
            (
                "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t",
                "a plugin",
            ),
        ] {
            let err = Recipients::from_keys_and_files(&[key.to_string()], &[]).unwrap_err();
            assert!(
                matches!(&err, EncryptionError::UnsupportedRecipient { kind: k, .. } if *k == kind),
                "{key}: {err:?}"
            );
        }
    }

    #[test]
    fn an_empty_or_missing_recipients_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = file(&dir, "empty.txt", "# nobody yet\n\n");
        assert!(matches!(
            Recipients::from_keys_and_files(&[], &[empty]).unwrap_err(),
            EncryptionError::NoRecipientInFile { .. }
        ));
        let missing = dir.path().join("missing.txt");
        let err = Recipients::from_keys_and_files(&[], std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot read the recipients file {}", missing.display())
        );
    }
}
