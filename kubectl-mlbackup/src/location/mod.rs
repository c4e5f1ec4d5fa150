//! Where backups live (DESIGN.md section 10): a local folder or a prefix in an S3-compatible
//! bucket, parsed from what `--dir` and `MLBACKUP_DIR` accept, and the storage operations the
//! backup code needs on a bucket.
//!
//! The forms accepted:
//! - a path (anything that is not a URL): a local folder, as before;
//! - `s3://BUCKET/PREFIX`: the same layout (DESIGN.md section 4) under `PREFIX/` in `BUCKET`; the
//!   prefix may be empty or have several parts (`s3://team-backups/prod/eu-1`);
//! - `s3://BUCKET/PREFIX?readonly`: the same, opened read-only: every write and delete is refused
//!   before any request is sent. An option of the location rather than a flag, so that it
//!   travels with `MLBACKUP_DIR`, shell completion and `copy --to` like the rest of the location
//!   (quote it in zsh, where an unquoted `?` is a glob). A folder is made read-only with
//!   [`Location::into_read_only`], for a command-line flag.
//!
//! Endpoint, region and credentials come only from the standard AWS variables and files
//! ([`aws`]), never from the location or argv: `s3://KEY:SECRET@bucket` is refused.

pub mod aws;
pub mod key;
mod profile;
mod request_log;
pub mod s3;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;

use key::KeyPrefix;

/// The URL scheme of S3-compatible locations.
pub const S3_SCHEME: &str = "s3://";
/// The location option that opens it read-only.
pub const READ_ONLY_OPTION: &str = "readonly";

/// A place holding backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Folder { path: PathBuf, read_only: bool },
    /// A prefix in a bucket.
    S3(S3Location),
}

/// `s3://BUCKET/PREFIX[?readonly]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: KeyPrefix,
    pub read_only: bool,
}

/// A location that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("the backup location is empty")]
    Empty,

    #[error("`{location}` is not a supported backup location: only folders and s3:// are")]
    UnsupportedScheme { location: String },

    /// The location text is not repeated: it held credentials.
    #[error(
        "the s3:// location holds credentials (`user:password@`), which are never read from it"
    )]
    CredentialsInLocation,

    #[error("`{location}` names no bucket")]
    NoBucket { location: String },

    #[error("`{location}`: `{bucket}` is not a valid bucket name: {reason}")]
    InvalidBucket {
        location: String,
        bucket: String,
        reason: &'static str,
    },

    #[error("`{location}`: the prefix is not valid")]
    InvalidPrefix {
        location: String,
        #[source]
        source: key::KeyError,
    },

    #[error("`{location}`: unknown option `{option}`")]
    UnknownOption { location: String, option: String },

    #[error("`{location}` is not valid UTF-8")]
    NotUtf8 { location: String },
}

impl LocationError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        const FORMS: &str = "give a folder path or s3://BUCKET/PREFIX (add ?readonly to open it \
                             read-only)";
        match self {
            LocationError::Empty
            | LocationError::UnsupportedScheme { .. }
            | LocationError::NoBucket { .. }
            | LocationError::NotUtf8 { .. } => Some(FORMS.into()),
            LocationError::CredentialsInLocation => Some(
                "remove them from the location and set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
                    .into(),
            ),
            LocationError::InvalidBucket { .. } => Some(
                "bucket names have 3 to 63 characters: letters, digits, `.`, `_` and `-`".into(),
            ),
            LocationError::InvalidPrefix { .. } => Some(
                "separate the parts of the prefix with single `/`; `.` and `..` are not allowed"
                    .into(),
            ),
            LocationError::UnknownOption { .. } => {
                Some(format!("the only option is `?{READ_ONLY_OPTION}`"))
            }
        }
    }
}

impl Location {
    /// Parses what `--dir` or `MLBACKUP_DIR` holds. A path stays a path byte for byte (it may
    /// contain `?` or `:`); only text starting with `SCHEME://` is read as a URL.
    pub fn parse(text: &OsStr) -> Result<Location, LocationError> {
        if text.is_empty() {
            return Err(LocationError::Empty);
        }
        let Some(utf8) = text.to_str() else {
            // Non-UTF-8 text cannot be a URL: a path, unless it looks like one.
            if url_scheme(text.as_encoded_bytes()).is_some() {
                return Err(LocationError::NotUtf8 {
                    location: text.to_string_lossy().into_owned(),
                });
            }
            return Ok(Location::Folder {
                path: PathBuf::from(text),
                read_only: false,
            });
        };
        match url_scheme(utf8.as_bytes()) {
            None => Ok(Location::Folder {
                path: PathBuf::from(text),
                read_only: false,
            }),
            Some(scheme) if scheme.eq_ignore_ascii_case("s3") => {
                S3Location::parse(utf8).map(Location::S3)
            }
            Some(_) => Err(LocationError::UnsupportedScheme {
                location: utf8.to_string(),
            }),
        }
    }

    /// The same location, opened read-only (for a `--read-only` flag).
    pub fn into_read_only(self) -> Location {
        match self {
            Location::Folder { path, .. } => Location::Folder {
                path,
                read_only: true,
            },
            Location::S3(s3) => Location::S3(S3Location {
                read_only: true,
                ..s3
            }),
        }
    }

    pub fn is_read_only(&self) -> bool {
        match self {
            Location::Folder { read_only, .. } => *read_only,
            Location::S3(s3) => s3.read_only,
        }
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Self {
        Location::Folder {
            path,
            read_only: false,
        }
    }
}

impl TryFrom<OsString> for Location {
    type Error = LocationError;
    fn try_from(text: OsString) -> Result<Self, Self::Error> {
        Location::parse(&text)
    }
}

/// `SCHEME` of `SCHEME://...` (RFC 3986 scheme characters), when the text starts so.
fn url_scheme(text: &[u8]) -> Option<&str> {
    let end = text.windows(3).position(|w| w == b"://")?;
    let scheme = &text[..end];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then(|| std::str::from_utf8(scheme).ok()).flatten()
}

impl S3Location {
    fn parse(text: &str) -> Result<S3Location, LocationError> {
        let rest = &text[S3_SCHEME.len()..];
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        // Checked before anything is repeated in an error: the text may hold a secret.
        if bucket.contains('@') {
            return Err(LocationError::CredentialsInLocation);
        }
        let location = || text.to_string();
        if bucket.is_empty() {
            return Err(LocationError::NoBucket {
                location: location(),
            });
        }
        check_bucket(bucket).map_err(|reason| LocationError::InvalidBucket {
            location: location(),
            bucket: bucket.to_string(),
            reason,
        })?;
        let prefix = KeyPrefix::parse(prefix).map_err(|source| LocationError::InvalidPrefix {
            location: location(),
            source,
        })?;
        let mut read_only = false;
        for option in query.into_iter().flat_map(|q| q.split('&')) {
            match option {
                READ_ONLY_OPTION | "readonly=true" => read_only = true,
                "readonly=false" => read_only = false,
                _ => {
                    return Err(LocationError::UnknownOption {
                        location: location(),
                        option: option.to_string(),
                    });
                }
            }
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix,
            read_only,
        })
    }
}

/// Bucket names as S3 and the S3-compatible stores accept them (AWS's rules, plus `_` and
/// capitals, which older buckets and some stores have). The name goes into the request path, so
/// nothing that would need escaping there is allowed.
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&bucket.len()) {
        return Err("it must have 3 to 63 characters");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("only letters, digits, `.`, `_` and `-` are allowed");
    }
    if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err("it must start and end with a letter or digit");
    }
    Ok(())
}

impl fmt::Display for S3Location {
    /// The location as a user writes it (it holds no secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{S3_SCHEME}{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        if self.read_only {
            write!(f, "?{READ_ONLY_OPTION}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Folder { path, .. } => write!(f, "{}", path.display()),
            Location::S3(s3) => s3.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Location, LocationError> {
        Location::parse(OsStr::new(text))
    }

    fn s3(text: &str) -> S3Location {
        match parse(text) {
            Ok(Location::S3(s3)) => s3,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn paths_stay_paths() {
        for path in [
            "/srv/backups",
            "backups",
            "./s3:/x",
            "odd?name",
            "a:b",
            "./x://y",
        ] {
            assert_eq!(
                parse(path).unwrap(),
                Location::Folder {
                    path: PathBuf::from(path),
                    read_only: false
                },
                "{path}"
            );
        }
    }

    #[test]
    fn non_utf8_paths_stay_paths() {
        use std::os::unix::ffi::OsStrExt;
        let path = OsStr::from_bytes(b"/srv/b\xffckups");
        assert_eq!(
            Location::parse(path).unwrap(),
            Location::Folder {
                path: PathBuf::from(path),
                read_only: false
            }
        );
    }

    #[test]
    fn s3_locations() {
        let loc = s3("s3://team-backups/prod/eu-1");
        assert_eq!(loc.bucket, "team-backups");
        assert_eq!(loc.prefix.to_string(), "prod/eu-1");
        assert!(!loc.read_only);
        assert_eq!(loc.to_string(), "s3://team-backups/prod/eu-1");

        let root = s3("s3://team-backups");
        assert!(root.prefix.is_empty());
        assert_eq!(root.to_string(), "s3://team-backups");
        assert!(s3("s3://team-backups/").prefix.is_empty());
        assert_eq!(s3("s3://team-backups/prod/").prefix.to_string(), "prod");
        assert_eq!(s3("S3://team-backups/prod").bucket, "team-backups");
    }

    #[test]
    fn read_only_option() {
        let loc = s3("s3://team-backups/prod?readonly");
        assert!(loc.read_only);
        assert_eq!(loc.prefix.to_string(), "prod");
        assert_eq!(loc.to_string(), "s3://team-backups/prod?readonly");
        assert!(s3("s3://team-backups?readonly=true").read_only);
        assert!(!s3("s3://team-backups?readonly=false").read_only);
        let err = parse("s3://team-backups/prod?region=eu").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`s3://team-backups/prod?region=eu`: unknown option `region=eu`"
        );
        assert!(err.hint().unwrap().contains("?readonly"));

        let folder = parse("/srv").unwrap();
        assert!(!folder.is_read_only());
        assert!(folder.into_read_only().is_read_only());
        assert!(Location::S3(s3("s3://abc")).into_read_only().is_read_only());
    }

    #[test]
    fn credentials_are_refused_and_not_repeated() {
        let err = parse("s3://AKIDEXAMPLE:s3cr3tV4lue@team-backups/prod").unwrap_err();
        assert!(matches!(err, LocationError::CredentialsInLocation));
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(!err.to_string().contains("AKID"), "{err}");
    }

    #[test]
    fn bad_locations() {
        assert!(matches!(parse(""), Err(LocationError::Empty)));
        assert!(matches!(
            parse("gs://bucket/x"),
            Err(LocationError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            parse("s3:///prefix"),
            Err(LocationError::NoBucket { .. })
        ));
        for bucket in ["ab", "-abc", "abc-", "a b c", "a%2fb"] {
            assert!(
                matches!(
                    parse(&format!("s3://{bucket}/x")),
                    Err(LocationError::InvalidBucket { .. })
                ),
                "{bucket}"
            );
        }
        for prefix in ["a//b", "a/../b", "..", "./a", "a/%2e%2e"] {
            let err = parse(&format!("s3://bucket/{prefix}")).unwrap_err();
            assert!(
                matches!(err, LocationError::InvalidPrefix { .. }),
                "{prefix}: {err}"
            );
        }
    }
}
