//! Object keys confined to a location's prefix: a key taken from a manifest or a user can name
//! only an object under the prefix, and always the object its text says.
//!
//! A key is relative (`lrs_backup_2026_11_21_14_05/ns/name.yaml`): parts separated by single
//! `/`, none empty, `.` or `..`, none with a character that `object_store` would escape (so the
//! object in the bucket has exactly the name the manifest records), at most 1024 bytes with the
//! prefix (S3's limit).

use std::fmt;

use object_store::path::{Path, PathPart};

/// S3's limit on the length of a key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a key or prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("it is empty")]
    Empty,
    #[error("it is absolute (starts with `/`)")]
    Absolute,
    #[error("it has an empty part (`//` or a trailing `/`)")]
    EmptyPart,
    #[error("it has a `{0}` part, which could leave the prefix")]
    DotPart(&'static str),
    #[error("its part `{part}` contains {what}, which S3 keys avoid")]
    BadCharacter { part: String, what: String },
    #[error("it is longer than {MAX_KEY_BYTES} bytes with the prefix")]
    TooLong,
}

/// The prefix of a location (`prod/eu-1`), possibly empty (the bucket's root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPrefix {
    parts: Vec<String>,
}

impl KeyPrefix {
    /// Parses the prefix of `s3://BUCKET/PREFIX`: one trailing `/` is allowed, as in
    /// `s3://bucket/prod/`.
    pub fn parse(text: &str) -> Result<KeyPrefix, KeyError> {
        let text = text.strip_suffix('/').unwrap_or(text);
        if text.is_empty() {
            return Ok(KeyPrefix::default());
        }
        let parts = split(text)?;
        if text.len() >= MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        Ok(KeyPrefix { parts })
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The full object path of `key`, checked (see the module's rules).
    pub fn join(&self, key: &str) -> Result<Path, KeyError> {
        let parts = split(key)?;
        let path = Path::from_iter(self.parts.iter().chain(&parts).map(String::as_str));
        if path.as_ref().len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        Ok(path)
    }

    /// The prefix as an object path (`None` for the bucket's root).
    pub fn path(&self) -> Option<Path> {
        (!self.is_empty()).then(|| Path::from_iter(self.parts.iter().map(String::as_str)))
    }

    /// `path` relative to this prefix, when it is under it.
    pub fn strip(&self, path: &Path) -> Option<String> {
        let mut parts = path.parts();
        for expected in &self.parts {
            if parts.next()?.as_ref() != expected {
                return None;
            }
        }
        let rest: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
        (!rest.is_empty()).then(|| rest.join("/"))
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join("/"))
    }
}

/// Checks one part of a key: a backup name, or a file name.
pub fn check_part(part: &str) -> Result<(), KeyError> {
    match part {
        "" => Err(KeyError::EmptyPart),
        "." => Err(KeyError::DotPart(".")),
        ".." => Err(KeyError::DotPart("..")),
        _ => {
            // Exactly what object_store would escape: such a key would not name the object the
            // manifest says (and `\` is a separator to some readers).
            if PathPart::from(part).as_ref() == part {
                return Ok(());
            }
            let bad = part
                .chars()
                .find(|c| {
                    let mut buf = [0u8; 4];
                    let text = c.encode_utf8(&mut buf);
                    PathPart::from(&*text).as_ref() != text
                })
                .unwrap_or('%');
            Err(KeyError::BadCharacter {
                part: part.escape_default().to_string(),
                what: if bad.is_control() {
                    "a control character".into()
                } else {
                    format!("`{bad}`")
                },
            })
        }
    }
}

fn split(key: &str) -> Result<Vec<String>, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.starts_with('/') {
        return Err(KeyError::Absolute);
    }
    key.split('/')
        .map(|part| check_part(part).map(|()| part.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> KeyPrefix {
        KeyPrefix::parse(text).unwrap()
    }

    #[test]
    fn keys_join_under_the_prefix() {
        let p = prefix("prod/eu-1");
        assert_eq!(
            p.join("lrs_backup_1/ns/name.yaml").unwrap().as_ref(),
            "prod/eu-1/lrs_backup_1/ns/name.yaml"
        );
        assert_eq!(prefix("").join("a/b").unwrap().as_ref(), "a/b");
        assert_eq!(p.path().unwrap().as_ref(), "prod/eu-1");
        assert_eq!(prefix("").path(), None);
    }

    #[test]
    fn keys_that_would_leave_the_prefix_are_refused() {
        let p = prefix("prod");
        let cases = [
            ("", KeyError::Empty),
            ("/etc/passwd", KeyError::Absolute),
            ("../other/manifest.json", KeyError::DotPart("..")),
            ("a/../../x", KeyError::DotPart("..")),
            ("./a", KeyError::DotPart(".")),
            ("a//b", KeyError::EmptyPart),
            ("a/", KeyError::EmptyPart),
        ];
        for (key, expected) in cases {
            assert_eq!(p.join(key).unwrap_err(), expected, "{key:?}");
        }
        for key in ["a\\..\\b", "a/%2e%2e/b", "a/b\u{0}c", "a/b\nc", "a/~x"] {
            assert!(
                matches!(p.join(key), Err(KeyError::BadCharacter { .. })),
                "{key:?}"
            );
        }
        let err = p.join("ns/a\\b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "its part `a\\\\b` contains `\\`, which S3 keys avoid"
        );
        let err = p.join("ns/a\nb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "its part `a\\nb` contains a control character, which S3 keys avoid"
        );
        assert_eq!(
            p.join(&"x".repeat(MAX_KEY_BYTES)).unwrap_err(),
            KeyError::TooLong
        );
    }

    #[test]
    fn strip_is_the_inverse_of_join() {
        let p = prefix("prod/eu-1");
        let path = p.join("b/ns/x.yaml").unwrap();
        assert_eq!(p.strip(&path).as_deref(), Some("b/ns/x.yaml"));
        assert_eq!(p.strip(&Path::from("prod/eu-2/b")), None);
        assert_eq!(p.strip(&Path::from("prod/eu-1")), None);
        assert_eq!(prefix("").strip(&Path::from("a/b")).as_deref(), Some("a/b"));
    }
}
