//! The backup location a command works on (`--dir`, `MLBACKUP_DIR`, `copy --to`), opened once
//! at the command boundary: a local folder or an `s3://` prefix behind one set of operations
//! (catalog, find, delete, write a backup, copy one), so that commands need not know which.
//!
//! A bucket's backup is read by mirroring its objects into a private temporary folder and
//! handing that to `folder` (`bucket::mirror`), so every check the folder makes (each sha256,
//! the layout, no symlinks, no path leaving the backup) applies unchanged. A backup is written
//! into a private staging folder by the folder's writer and published from there: its name
//! claimed first with a create-only object, each item uploaded as soon as it is written (while
//! the next page of the list arrives; `bucket::ItemUploads`), the manifest last and
//! create-only. This module moves bytes: it does not care what the files hold.

mod bucket;
mod lock;
mod runs;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, Utc};

use crate::env::Env;
use crate::folder::{
    self, Backup, BackupSummary, BackupWriter, Catalog, FolderError, PARTIAL_SUFFIX,
};
use crate::location::aws::{self, AwsConfigError};
use crate::location::s3::{S3Error, S3Store};
use crate::location::{Location, LocationError};

pub use bucket::{ItemUploads, Publish};
pub use lock::{Lock, LockRecord};
pub use runs::RUNS_DIR;

/// A failure of a backup location, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("cannot use the AWS configuration for {location}")]
    Aws {
        location: String,
        #[source]
        source: AwsConfigError,
    },
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("{location} is read-only: refusing to {action}")]
    ReadOnly {
        location: String,
        action: &'static str,
    },
    #[error("no backup named `{name}` in {location}")]
    NotFound { name: String, location: String },
    #[error("a backup named `{name}` already exists in {location}")]
    AlreadyExists { name: String, location: String },
    #[error("`{name}` in {location} holds {count} objects, more than the {limit} a backup may")]
    TooManyObjects {
        name: String,
        location: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "`{name}` in {location} is not a backup: it holds neither a manifest.json nor the \
         .claim a backup starts with"
    )]
    Foreign { name: String, location: String },
    #[error("`{key}` in {location} is not a file of a backup: {reason}")]
    StrangeObject {
        key: String,
        location: String,
        reason: &'static str,
    },
    #[error("{location} is locked by `{holder}`{}", lease_until.map(|t| format!(" until {}", t.format("%Y-%m-%d %H:%M:%S UTC"))).unwrap_or_default())]
    Locked {
        location: String,
        holder: String,
        lease_until: Option<chrono::DateTime<chrono::Utc>>,
    },
    #[error("the lock `{key}` is not a lock this plugin wrote")]
    BadLock { key: String },
    /// Ctrl-C: the inner error (which sets the exit code, 130) says where the work stopped
    /// and what is left.
    #[error("stopped by an interrupt (Ctrl-C)")]
    Interrupted(#[source] crate::exit::Interrupted),
    /// A bucket's backup that the folder code refused, in the bucket's terms (the private
    /// mirror it was read from is never named).
    #[error("{detail}")]
    Unreadable { detail: String },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::Location(err) => err.hint(),
            StoreError::Aws { source, .. } => source.hint(),
            StoreError::S3(err) => err.hint(),
            StoreError::Folder(err) => err.hint(),
            StoreError::ReadOnly { .. } => Some(
                "this location was opened read-only (`?readonly` or --read-only); use it \
                 without them to change it"
                    .into(),
            ),
            StoreError::NotFound { location, .. } => Some(format!(
                "run `kubectl mlbackup list --dir {location}` to see the backups there; set \
                 --dir or MLBACKUP_DIR to look elsewhere"
            )),
            StoreError::AlreadyExists { name, location } => Some(format!(
                "a backup is never overwritten: choose another name (backup --name) or \
                 location, or remove the old one first with `kubectl mlbackup delete {name} \
                 --dir {location}`"
            )),
            StoreError::Locked { .. } => Some(
                "one run writes to a location at a time (a scheduled run, or a prune that \
                 deletes): this run did nothing; try again once that run has ended (it releases \
                 the lock) or its lease has passed (the lock is then taken over)"
                    .into(),
            ),
            StoreError::Foreign { location, .. } => Some(format!(
                "kubectl-mlbackup never reads, prunes or deletes what it did not write; run \
                 `kubectl mlbackup list --dir {location}` to see the backups there"
            )),
            StoreError::BadLock { key } => Some(format!(
                "check that no run is writing to this location, then remove `{key}`"
            )),
            StoreError::TooManyObjects { .. }
            | StoreError::StrangeObject { .. }
            | StoreError::Interrupted(_)
            | StoreError::Unreadable { .. }
            | StoreError::Io { .. } => None,
        }
    }
}

/// An opened backup location.
#[derive(Debug)]
pub struct Store {
    kind: Kind,
    /// What to tell the user about how it was opened (a plain-http endpoint); shown once by the
    /// command.
    pub warnings: Vec<String>,
}

#[derive(Debug)]
enum Kind {
    Folder { root: PathBuf, read_only: bool },
    Bucket(S3Store),
}

/// A backup found in a location, ready for `folder`'s readers: `backup.dir` is the folder
/// itself, or a private mirror of the bucket's objects (removed when this is dropped).
#[derive(Debug)]
pub struct Found {
    pub backup: Backup,
    /// Where the backup is, as the user names it: the folder, or `s3://BUCKET/PREFIX/NAME`.
    pub shown: PathBuf,
    /// The objects of a bucket's backup (relative paths and sizes), when it is one.
    listed: Option<Vec<crate::location::s3::StoredObject>>,
    /// The bucket and the backup's name there, when it is a bucket's.
    origin: Option<(S3Store, String)>,
    /// When a bucket's backup without a manifest was started, from what the bucket holds (its
    /// mirror's folder is as new as the mirror).
    stored_at: Option<DateTime<Utc>>,
    _mirror: Option<tempfile::TempDir>,
}

impl Found {
    /// A path of the backup (`ns/name.yaml`) in the user's terms: the bucket's key URL for a
    /// bucket, the relative path for a folder (as before).
    pub fn locate(&self, path: &str) -> String {
        match self.listed {
            Some(_) => format!("{}/{path}", self.shown.display()),
            None => path.to_string(),
        }
    }

    /// When the backup was started: [`Backup::created_at`], for a bucket's backup without a
    /// manifest from what the bucket holds (see `bucket::started_without_manifest`).
    pub fn created_at(&self) -> DateTime<Utc> {
        match (&self.backup.manifest, self.stored_at) {
            (None, Some(at)) => at,
            _ => self.backup.created_at(),
        }
    }

    /// Whether the backup is a bucket's (mirrored).
    pub fn in_bucket(&self) -> bool {
        self.origin.is_some()
    }

    /// The total size of the backup's files (a bucket's: of its objects, as listed).
    pub fn size_bytes(&self) -> Result<u64, FolderError> {
        match &self.listed {
            Some(objects) => Ok(objects
                .iter()
                .filter(|o| o.path != bucket::CLAIM)
                .map(|o| o.size)
                .sum()),
            None => self.backup.size_bytes(),
        }
    }

    /// Appends `record` to the backup's journal; a bucket's journal is appended in the mirror
    /// and uploaded whole (it is small: a few lines per run). Returns where the journal is.
    pub async fn append_journal<T: serde::Serialize>(
        &self,
        record: &T,
    ) -> Result<PathBuf, StoreError> {
        let path = self.backup.append_journal(record)?;
        if self.origin.is_none() {
            return Ok(path);
        }
        self.upload(folder::JOURNAL_FILE).await?;
        Ok(PathBuf::from(self.locate(folder::JOURNAL_FILE)))
    }

    /// Uploads the file `file` of the mirror to the bucket (a folder's is where it is), for
    /// the files added to a complete backup (journal, deployment snapshot).
    pub async fn upload(&self, file: &str) -> Result<(), StoreError> {
        if let Some((s3, name)) = &self.origin {
            let path = self.backup.dir.join(file);
            let bytes = std::fs::read(&path).map_err(|source| StoreError::Io {
                action: "read",
                path,
                source,
            })?;
            s3.put(&format!("{name}/{file}"), bytes).await?;
        }
        Ok(())
    }

    /// Whether the backup holds `file` (like [`folder::DEPLOYMENTS_FILE`]).
    pub fn has_file(&self, file: &str) -> bool {
        match &self.listed {
            Some(objects) => objects.iter().any(|o| o.path == file),
            None => self.backup.has_file(file),
        }
    }
}

/// What a delete cut short left of a backup (see [`Store::remains`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remains {
    /// Nothing: it was deleted whole.
    Nothing,
    /// All of it: the delete had not begun.
    Untouched,
    /// A bucket's backup without its manifest (deleted first): listed as partial, never read
    /// as complete; deleting it again removes the rest.
    Partial,
    /// A folder's backup renamed to this `.deleting` folder: listed as left over from an
    /// interrupted delete, never as a backup.
    Leftover(PathBuf),
}

/// What is read of a bucket's backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Every object (verify, restore, diff, show --files, copy).
    Everything,
    /// The manifest only, when there is one (show, delete's question).
    Manifest,
    /// The manifest and what the runbooks add to a backup (the journal, the deployment
    /// snapshot), when there is a manifest: `prepare` and `deployments --backup`.
    Records,
}

/// Where a new backup is being written: the folder's writer (in the location's folder, or in a
/// staging folder for a bucket) and, for a bucket, what publishes it.
pub struct Target {
    pub writer: BackupWriter,
    pub publish: Option<Publish>,
}

impl Store {
    /// Opens `dir` (`--dir`), else `MLBACKUP_DIR`, else the current directory; `read_only` (a
    /// flag) opens it read-only whatever the location says. Sends no request.
    pub fn open(dir: Option<&Path>, read_only: bool, env: &Env) -> Result<Store, StoreError> {
        let text = dir
            .or(env.mlbackup_dir.as_deref())
            .map(Path::as_os_str)
            .unwrap_or(OsStr::new("."));
        Store::open_location(text, read_only, env)
    }

    /// Opens the location `text` (as `--dir` takes it).
    pub fn open_location(text: &OsStr, read_only: bool, env: &Env) -> Result<Store, StoreError> {
        let mut location = Location::parse(text)?;
        if read_only {
            location = location.into_read_only();
        }
        let read_only = location.is_read_only();
        match location {
            Location::Folder { path, .. } => Ok(Store {
                kind: Kind::Folder {
                    root: path,
                    read_only,
                },
                warnings: Vec::new(),
            }),
            Location::S3(s3) => {
                let settings = aws::resolve(&env.aws, env.home.as_deref()).map_err(|source| {
                    StoreError::Aws {
                        location: s3.to_string(),
                        source,
                    }
                })?;
                let opened = S3Store::open(&s3, &settings)?;
                Ok(Store {
                    kind: Kind::Bucket(opened.store),
                    warnings: opened.warnings.iter().map(ToString::to_string).collect(),
                })
            }
        }
    }

    /// The location as the user names it (a folder's path, or `s3://BUCKET/PREFIX`).
    pub fn shown(&self) -> PathBuf {
        match &self.kind {
            Kind::Folder { root, .. } => root.clone(),
            Kind::Bucket(s3) => PathBuf::from(s3.location().to_string()),
        }
    }

    /// The location it was opened from (for rules that depend on where backups go, such as
    /// encryption being required off this machine).
    pub fn location(&self) -> Location {
        match &self.kind {
            Kind::Folder { root, read_only } => Location::Folder {
                path: root.clone(),
                read_only: *read_only,
            },
            Kind::Bucket(s3) => Location::S3(s3.location().clone()),
        }
    }

    /// The folder, when the location is one.
    pub fn folder(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Folder { root, .. } => Some(root),
            Kind::Bucket(_) => None,
        }
    }

    pub fn is_read_only(&self) -> bool {
        match &self.kind {
            Kind::Folder { read_only, .. } => *read_only,
            Kind::Bucket(s3) => s3.is_read_only(),
        }
    }

    /// Refuses `action` on a read-only location, before any request or change.
    pub fn check_writable(&self, action: &'static str) -> Result<(), StoreError> {
        if self.is_read_only() {
            return Err(StoreError::ReadOnly {
                location: self.shown().display().to_string(),
                action,
            });
        }
        Ok(())
    }

    /// Checks that the location can be used (a bucket: one listing with the credentials), so
    /// a wrong key or a missing bucket shows before anything is read or written.
    pub async fn check(&self) -> Result<(), StoreError> {
        match &self.kind {
            Kind::Folder { .. } => Ok(()),
            Kind::Bucket(s3) => Ok(s3.check().await?),
        }
    }

    /// The backups of the location, newest first (a bucket's: from their manifests only).
    pub async fn catalog(&self) -> Result<Catalog, StoreError> {
        match &self.kind {
            Kind::Folder { root, .. } => Ok(folder::catalog(root)?),
            Kind::Bucket(s3) => bucket::catalog(s3).await,
        }
    }

    /// Finds a backup to read (verify, restore, diff, show, copy): by name in the location, or
    /// by path (an argument with a `/`) in the local file system as `folder` reads it.
    pub async fn find_for_reading(&self, name: &str, read: Read) -> Result<Found, StoreError> {
        match &self.kind {
            Kind::Folder { root, .. } => Ok(local(folder::resolve_for_reading(root, name)?)),
            Kind::Bucket(_) if name.contains('/') => {
                Ok(local(folder::resolve_for_reading(Path::new("."), name)?))
            }
            Kind::Bucket(s3) => bucket::mirror(s3, bucket_name(name), read).await,
        }
    }

    /// Finds a backup of the location by name (delete, the runbooks), a folder's by path too.
    pub async fn find(&self, name: &str, read: Read) -> Result<Found, StoreError> {
        match &self.kind {
            Kind::Folder { root, .. } => Ok(local(folder::resolve(root, name)?)),
            Kind::Bucket(s3) => bucket::mirror(s3, bucket_name(name), read).await,
        }
    }

    /// Deletes a backup found with [`Store::find`]: a folder's as `folder` does, a bucket's
    /// manifest first (so a delete cut short never leaves something that looks complete).
    /// Returns the bytes freed.
    pub async fn delete(&self, found: Found) -> Result<u64, StoreError> {
        self.check_writable("delete backups")?;
        match &self.kind {
            Kind::Folder { .. } => Ok(found.backup.delete()?),
            Kind::Bucket(s3) => {
                let size = found.size_bytes()?;
                let name = bucket_name(&found.backup.name);
                // What a delete cut short leaves must still be a backup (a partial one, as old
                // as the backup) that the next delete finishes: the claim stays to the end.
                bucket::keep_claimed(s3, name, found.backup.created_at()).await?;
                s3.delete_all(name, folder::MANIFEST_FILE, bucket::CLAIM)
                    .await?;
                Ok(size)
            }
        }
    }

    /// What is left of the backup `name` (found at `shown`) after a delete was cut short, as
    /// the location holds it now.
    pub async fn remains(&self, name: &str, shown: &Path) -> Result<Remains, StoreError> {
        match &self.kind {
            Kind::Folder { .. } => {
                // Renamed to `.deleting` in one step: still there means not begun.
                if shown.symlink_metadata().is_ok() {
                    return Ok(Remains::Untouched);
                }
                Ok(folder::delete_leftovers(shown)?
                    .into_iter()
                    .next()
                    .map_or(Remains::Nothing, Remains::Leftover))
            }
            Kind::Bucket(s3) => {
                let listed = s3.list(bucket_name(name)).await?;
                Ok(if listed.is_empty() {
                    Remains::Nothing
                } else if listed.iter().any(|o| o.path == folder::MANIFEST_FILE) {
                    Remains::Untouched
                } else {
                    Remains::Partial
                })
            }
        }
    }

    /// Starts a new backup: a folder's `.partial` folder, or for a bucket the name claimed
    /// (create-only, before anything else) and a private staging folder. `None` as the name:
    /// `lrs_backup_YYYY_MM_DD_HH_MM` with `_2`, `_3`, ... while taken.
    pub async fn create(
        &self,
        name: Option<&str>,
        started: DateTime<Local>,
    ) -> Result<Target, StoreError> {
        self.check_writable("write a backup")?;
        match &self.kind {
            Kind::Folder { root, .. } => Ok(Target {
                writer: BackupWriter::create(root, name, started)?,
                publish: None,
            }),
            Kind::Bucket(s3) => bucket::create(s3, name, started).await,
        }
    }

    /// Copies the backup `found` (complete and intact: the caller verified it) into this
    /// location under its name: complete or invisible here, never over an existing name.
    /// Returns where it now is.
    pub async fn receive(
        &self,
        found: &Found,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<PathBuf, StoreError> {
        self.check_writable("copy a backup into it")?;
        let name = bucket_name(&found.backup.name).to_string();
        match &self.kind {
            Kind::Folder { root, .. } => {
                bucket::copy_to_folder(&found.backup.dir, root, &name, cancel)
            }
            Kind::Bucket(s3) => {
                let publish = bucket::claim_exact(s3, &name).await?;
                publish.publish_dir(&found.backup.dir, true, cancel).await
            }
        }
    }
}

/// A bucket's backup has no `.partial` name: a partial one is a name without a manifest.
fn bucket_name(name: &str) -> &str {
    name.strip_suffix(PARTIAL_SUFFIX).unwrap_or(name)
}

fn local(backup: Backup) -> Found {
    Found {
        shown: backup.dir.clone(),
        backup,
        listed: None,
        origin: None,
        stored_at: None,
        _mirror: None,
    }
}

/// The summary `list` shows of a found backup (a bucket's with its name and size there).
pub fn summary(found: &Found) -> Result<BackupSummary, FolderError> {
    let mut summary = found.backup.summary()?;
    if found.listed.is_some() {
        summary.name = bucket_name(&summary.name).to_string();
        summary.path = found.shown.clone();
        summary.size_bytes = found.size_bytes()?;
        summary.created_at = found.created_at();
    }
    Ok(summary)
}
