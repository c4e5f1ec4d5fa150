//! A bucket's backups through the folder code: catalogued from their manifests, mirrored into a
//! private temporary folder to be read (every key checked, sizes and counts bounded), and
//! written by publishing a staging folder (name claimed first, items concurrently, manifest
//! last and create-only).

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Local, Utc};
use futures::StreamExt;
use mlbackup_helper::text::error_chain;
use tokio_util::sync::CancellationToken;

use crate::exit::Interrupted;
use crate::folder::{
    self, Backup, BackupWriter, Catalog, FolderError, MANIFEST_FILE, PARTIAL_SUFFIX, Unreadable,
};
use crate::location::key;
use crate::location::s3::{S3Error, S3Store, StoredObject};

use super::{Found, Read, StoreError, Target};

/// The object under `NAME/` that claims the name for one writer (create-only) before anything
/// else is written, so that of two backups racing for a name exactly one goes on. Removed once
/// the manifest is written; a backup cut short keeps it (it lists as partial). Never mirrored.
pub const CLAIM: &str = ".claim";

/// Requests in flight at once (listing manifests, mirroring, uploading): enough to hide the
/// latency of a remote endpoint, few enough to keep memory bounded by this many objects.
const CONCURRENCY: usize = 16;
/// Uploads in flight at once: small objects, where each request's round trip dominates; memory
/// stays bounded by this many objects (an LRS is at most a few MiB).
const UPLOADS: usize = 64;
/// The largest object read: an LRS is at most a few MiB (etcd's limit is 1.5 MiB); a manifest
/// of 100,000 items is about 40 MiB.
const MAX_OBJECT_BYTES: u64 = 256 << 20;
/// The largest claim read: a few dozen bytes of JSON.
const MAX_CLAIM_BYTES: u64 = 64 << 10;
/// The most objects one backup may hold (LRSes, manifest, snapshot, journal).
const MAX_OBJECTS: usize = 1_000_000;
/// How many default names (`_2`, `_3`, ...) are tried.
const MAX_NAME_ATTEMPTS: u32 = 1000;
/// Folder layout: `NAME/file` or `NAME/namespace/file`, nothing deeper.
const MAX_DEPTH: usize = 2;

/// `s3://BUCKET/PREFIX/KEY`, as the user names an object (no `?readonly`).
fn url_of(s3: &S3Store, key: &str) -> String {
    let location = s3.location();
    if location.prefix.is_empty() {
        format!("s3://{}/{key}", location.bucket)
    } else {
        format!("s3://{}/{}/{key}", location.bucket, location.prefix)
    }
}

fn location_of(s3: &S3Store) -> String {
    s3.location().to_string()
}

/// Every backup under the prefix, from its manifest (read concurrently); a name with objects
/// but no manifest is partial.
pub async fn catalog(s3: &S3Store) -> Result<Catalog, StoreError> {
    let names = s3.list_names().await?;
    let found: Vec<(String, Result<Found, StoreError>)> = futures::stream::iter(names)
        .map(|name| async move {
            let found = mirror(s3, &name, Read::Manifest).await;
            (name, found)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut backups = Vec::new();
    let mut unreadable = Vec::new();
    for (name, found) in found {
        match found.and_then(|found| Ok(super::summary(&found)?)) {
            Ok(summary) => backups.push(summary),
            // Deleted since it was listed, or not a backup (see `mirror`).
            Err(StoreError::NotFound { .. } | StoreError::Foreign { .. }) => {}
            Err(StoreError::S3(err)) => return Err(err.into()),
            Err(err) => unreadable.push(Unreadable {
                name,
                reason: error_chain(&err),
            }),
        }
    }
    Ok(Catalog::sorted(backups, unreadable))
}

/// Mirrors the backup `name` (its manifest only, or everything) into a private temporary
/// folder, named `NAME` when it has a manifest and `NAME.partial` when not, and opens it.
pub async fn mirror(s3: &S3Store, name: &str, read: Read) -> Result<Found, StoreError> {
    key::check_part(name).map_err(|_| FolderError::InvalidName {
        name: name.escape_default().to_string(),
        reason: "name a backup, not a path",
    })?;
    let listed = s3.list(name).await?;
    if listed.is_empty() {
        return Err(StoreError::NotFound {
            name: name.to_string(),
            location: location_of(s3),
        });
    }
    if listed.len() > MAX_OBJECTS {
        return Err(StoreError::TooManyObjects {
            name: name.to_string(),
            location: location_of(s3),
            count: listed.len(),
            limit: MAX_OBJECTS,
        });
    }
    let has_manifest = listed.iter().any(|o| o.path == MANIFEST_FILE);
    // A backup starts with its claim and ends with its manifest: objects with neither (or the
    // location's own dot records) were put there by someone else, and are never read as a
    // backup, nor pruned or deleted as one.
    if name.starts_with('.') || !(has_manifest || listed.iter().any(|o| o.path == CLAIM)) {
        return Err(StoreError::Foreign {
            name: name.to_string(),
            location: location_of(s3),
        });
    }
    let wanted: Vec<StoredObject> = listed
        .iter()
        .filter(|o| o.path != CLAIM)
        .filter(|o| {
            !has_manifest
                || match read {
                    Read::Everything => true,
                    Read::Manifest => o.path == MANIFEST_FILE,
                    Read::Records => [
                        MANIFEST_FILE,
                        folder::JOURNAL_FILE,
                        folder::DEPLOYMENTS_FILE,
                    ]
                    .contains(&o.path.as_str()),
                }
        })
        .cloned()
        .collect();
    for object in &wanted {
        check_path(s3, name, object)?;
    }
    let temp = tempfile::Builder::new()
        .prefix("mlbackup-mirror-")
        .tempdir()
        .map_err(|source| StoreError::Io {
            action: "create a temporary folder",
            path: std::env::temp_dir(),
            source,
        })?;
    let dir = temp.path().join(if has_manifest {
        name.to_string()
    } else {
        format!("{name}{PARTIAL_SUFFIX}")
    });
    create_private_dir(&dir)?;
    let mut downloads = futures::stream::iter(&wanted)
        .map(|object| async move {
            let bytes = s3
                .get(&format!("{name}/{}", object.path), MAX_OBJECT_BYTES)
                .await;
            (object, bytes)
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((object, bytes)) = downloads.next().await {
        let bytes = match bytes {
            Ok(bytes) => bytes,
            // Deleted since it was listed: what verify reports as missing.
            Err(S3Error::NotFound { .. }) => continue,
            Err(err) => return Err(err.into()),
        };
        write_new(&dir, &object.path, &bytes)?;
    }
    let stored_at = if has_manifest {
        None
    } else {
        started_without_manifest(s3, name, &listed).await?
    };
    let url = url_of(s3, name);
    let mut backup = Backup::open(&dir).map_err(|err| StoreError::Unreadable {
        detail: mlbackup_helper::text::error_chain(&err).replace(&dir.display().to_string(), &url),
    })?;
    // The mirror of a partial is `NAME.partial` so that the folder code reads it as partial;
    // in the bucket (and in every message) its name stays NAME.
    backup.name = name.to_string();
    Ok(Found {
        backup,
        shown: PathBuf::from(url),
        listed: Some(listed),
        origin: Some((s3.clone(), name.to_string())),
        stored_at,
        _mirror: Some(temp),
    })
}

/// What a claim says (see [`claim`]).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClaimRecord {
    claimed_at: DateTime<Utc>,
}

/// When the backup `name`, which has no manifest (cut short), was started, from what the bucket
/// holds: its claim's `claimedAt`, else the oldest `LastModified` of its objects. Never the
/// time it is looked at: a partial backup must age like any other, or prune keeps it forever
/// as one that may still be written.
async fn started_without_manifest(
    s3: &S3Store,
    name: &str,
    listed: &[StoredObject],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    if listed.iter().any(|o| o.path == CLAIM) {
        match s3.get(&format!("{name}/{CLAIM}"), MAX_CLAIM_BYTES).await {
            Ok(bytes) => {
                if let Ok(claim) = serde_json::from_slice::<ClaimRecord>(&bytes) {
                    return Ok(Some(claim.claimed_at));
                }
            }
            // Removed since it was listed (the manifest was just written, or a delete).
            Err(S3Error::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(listed.iter().map(|o| o.modified).min())
}

/// A key of a backup that a folder can hold: parts valid (no `..`, nothing empty), at most
/// `namespace/file` deep.
fn check_path(s3: &S3Store, name: &str, object: &StoredObject) -> Result<(), StoreError> {
    let strange = |reason| StoreError::StrangeObject {
        key: url_of(s3, &format!("{name}/{}", object.path)),
        location: location_of(s3),
        reason,
    };
    let parts: Vec<&str> = object.path.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return Err(strange("backups hold files at most one folder deep"));
    }
    if parts.iter().any(|part| key::check_part(part).is_err())
        || s3.check_key(&format!("{name}/{}", object.path)).is_err()
    {
        return Err(strange("its name is no file name"));
    }
    if object.size > MAX_OBJECT_BYTES {
        return Err(strange("it is larger than any file of a backup"));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(StoreError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// Writes `relative` (checked by [`check_path`]) under `dir`, 0600, refusing to replace.
fn write_new(dir: &Path, relative: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let io = |source| StoreError::Io {
        action: "write",
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mlbackup_helper::files::FILE_MODE)
        .open(&path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)
}

/// Puts a claim on the backup `name` (created at `created_at`) unless it has one, so that a
/// delete cut short leaves a partial backup of that age rather than objects of no one.
pub async fn keep_claimed(
    s3: &S3Store,
    name: &str,
    created_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let body = serde_json::json!({
        "claimedAt": created_at,
        "toolVersion": env!("CARGO_PKG_VERSION"),
    });
    match s3
        .put_new(&format!("{name}/{CLAIM}"), body.to_string().into_bytes())
        .await
    {
        Ok(()) | Err(S3Error::AlreadyExists { .. }) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Claims `name` in the bucket: no object under `NAME/` yet, then the create-only claim
/// object. `Ok(false)`: taken.
async fn claim(s3: &S3Store, name: &str) -> Result<bool, StoreError> {
    if s3.exists(name).await? {
        return Ok(false);
    }
    let body = serde_json::json!({
        "claimedAt": chrono::Utc::now(),
        "toolVersion": env!("CARGO_PKG_VERSION"),
    });
    match s3
        .put_new(&format!("{name}/{CLAIM}"), body.to_string().into_bytes())
        .await
    {
        Ok(()) => {}
        Err(S3Error::AlreadyExists { .. }) => return Ok(false),
        Err(err) => return Err(err.into()),
    }
    // Written without a claim (by hand, by another tool) between the look and the claim.
    if s3.size(&format!("{name}/{MANIFEST_FILE}")).await?.is_some() {
        s3.delete(&format!("{name}/{CLAIM}")).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Claims exactly `name` (a requested name, a copy's): taken is an error.
pub async fn claim_exact(s3: &S3Store, name: &str) -> Result<Publish, StoreError> {
    if !claim(s3, name).await? {
        return Err(StoreError::AlreadyExists {
            name: name.to_string(),
            location: location_of(s3),
        });
    }
    Ok(Publish {
        s3: s3.clone(),
        name: name.to_string(),
        _staging: None,
    })
}

/// Claims the name in the bucket first (before the cluster is read), then opens the folder
/// writer in a private staging folder under that name.
pub async fn create(
    s3: &S3Store,
    requested: Option<&str>,
    started: DateTime<Local>,
) -> Result<Target, StoreError> {
    let staging = tempfile::Builder::new()
        .prefix("mlbackup-staging-")
        .tempdir()
        .map_err(|source| StoreError::Io {
            action: "create a temporary folder",
            path: std::env::temp_dir(),
            source,
        })?;
    let name = match requested {
        Some(name) => {
            // The writer validates the name before anything is claimed.
            drop(BackupWriter::create(staging.path(), Some(name), started)?.discard());
            claim_exact(s3, name).await?;
            name.to_string()
        }
        None => {
            let base = folder::default_name(started);
            let mut chosen = None;
            for attempt in 1..=MAX_NAME_ATTEMPTS {
                let name = if attempt == 1 {
                    base.clone()
                } else {
                    format!("{base}_{attempt}")
                };
                if claim(s3, &name).await? {
                    chosen = Some(name);
                    break;
                }
            }
            chosen.ok_or_else(|| FolderError::NoFreeName {
                base,
                root: PathBuf::from(location_of(s3)),
            })?
        }
    };
    let writer = BackupWriter::create(staging.path(), Some(&name), started)?.staging();
    Ok(Target {
        writer,
        publish: Some(Publish {
            s3: s3.clone(),
            name,
            _staging: Some(staging),
        }),
    })
}

/// A claimed name in a bucket and what gets published under it.
#[derive(Debug)]
pub struct Publish {
    s3: S3Store,
    name: String,
    /// The staging folder of a backup being written: held so that it is removed when this
    /// is dropped.
    _staging: Option<tempfile::TempDir>,
}

impl Publish {
    /// `s3://BUCKET/PREFIX/NAME`.
    pub fn shown(&self) -> PathBuf {
        PathBuf::from(url_of(&self.s3, &self.name))
    }

    /// Uploads the finished backup folder `dir`: every file but the manifest concurrently,
    /// then (with `verify`) the uploaded objects read back and checked against the manifest,
    /// then the manifest create-only, then the claim is removed. Interrupted by `cancel`, it
    /// leaves objects without a manifest (listed as partial). Returns where the backup is.
    pub async fn publish_dir(
        &self,
        dir: &Path,
        verify: bool,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, StoreError> {
        let files = files_of(dir)?;
        let work = async {
            self.upload_items(dir, &files).await?;
            if verify {
                verify_uploaded(self, dir).await?;
            }
            let manifest = read(&dir.join(MANIFEST_FILE))?;
            self.s3
                .put_new(&format!("{}/{MANIFEST_FILE}", self.name), manifest)
                .await?;
            Ok::<_, StoreError>(())
        };
        tokio::select! {
            result = work => result?,
            () = cancel.cancelled() => return Err(self.interrupted()),
        }
        self.remove_claim().await;
        Ok(self.shown())
    }

    /// Starts uploading the item files of the backup being written in `dir` (the writer's
    /// folder in the staging folder) while it is written: each file is queued with
    /// [`ItemUploads::send`] once the writer has written it, read from `dir` when its upload
    /// starts, and put with at most [`UPLOADS`] in flight, so memory stays bounded by them and
    /// the queue. Nothing here writes the manifest: see [`Publish::complete`].
    pub fn stream(&self, dir: &Path) -> ItemUploads {
        let (sender, queue) = tokio::sync::mpsc::channel(QUEUED);
        let started = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(upload_queue(
            self.s3.clone(),
            self.name.clone(),
            dir.to_path_buf(),
            queue,
            Arc::clone(&started),
        ));
        ItemUploads {
            sender,
            task: Some(task),
            started,
        }
    }

    /// Completes a backup whose items are all uploaded ([`Self::stream`]): `manifest.json` of
    /// `dir` (the finished folder) create-only, then the claim removed. Interrupted by
    /// `cancel` before the manifest is written, it leaves a partial. Returns where it is.
    pub async fn complete(
        &self,
        dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<PathBuf, StoreError> {
        let manifest = read(&dir.join(MANIFEST_FILE))?;
        let key = format!("{}/{MANIFEST_FILE}", self.name);
        tokio::select! {
            result = self.s3.put_new(&key, manifest) => result?,
            () = cancel.cancelled() => return Err(self.interrupted()),
        }
        self.remove_claim().await;
        Ok(self.shown())
    }

    async fn remove_claim(&self) {
        // Best effort: a claim left behind is harmless (never mirrored, deleted with the rest).
        if let Err(err) = self.s3.delete(&format!("{}/{CLAIM}", self.name)).await {
            log::warn!("cannot remove the claim of {}: {err}", self.name);
        }
    }

    /// Gives the claimed name up (nothing was captured): removes the claim.
    pub async fn release(&self) -> Result<(), StoreError> {
        Ok(self.s3.delete(&format!("{}/{CLAIM}", self.name)).await?)
    }

    /// The error of a backup interrupted once items were being uploaded: a partial is left.
    pub fn interrupted(&self) -> StoreError {
        StoreError::Interrupted(Interrupted(format!(
            "interrupted while uploading: {} is left without a manifest (`list --dir {}` shows \
             it as partial; `delete {} --dir {}` removes it)",
            self.shown().display(),
            self.s3.location(),
            self.name,
            self.s3.location()
        )))
    }

    async fn upload_items(&self, dir: &Path, files: &[String]) -> Result<(), StoreError> {
        let mut uploads = self.s3.uploads(UPLOADS);
        for file in files.iter().filter(|f| *f != MANIFEST_FILE) {
            let bytes = read(&dir.join(file))?;
            uploads.put(&format!("{}/{file}", self.name), bytes).await?;
        }
        uploads.finish().await?;
        Ok(())
    }
}

/// Files queued for upload and not yet started, at most: the writer runs ahead of the uploads
/// by this many paths (a few pages), never by the whole backup.
const QUEUED: usize = 2048;

/// What the writer tells the uploads of a backup being written.
enum Queued {
    /// A file (relative to the folder) was written.
    File(String),
    /// The list starts again in a cleared folder: what was uploaded goes too.
    Restart,
}

/// The uploads of a bucket's backup while it is written (see [`Publish::stream`]). Dropped
/// without [`ItemUploads::finish`], it stops the uploads in flight (a partial is left).
pub struct ItemUploads {
    sender: tokio::sync::mpsc::Sender<Queued>,
    /// `None` once its failure was returned by [`ItemUploads::send`].
    task: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
    /// Set once a put has been started: from then on the bucket may hold objects of the name.
    started: Arc<AtomicBool>,
}

impl ItemUploads {
    /// Queues the files `paths` (relative to the folder, just written) for upload, waiting
    /// while the queue is full. An upload that failed stops it: the error is that failure.
    pub async fn send(&mut self, paths: impl Iterator<Item = &str>) -> Result<(), StoreError> {
        for path in paths {
            if self
                .sender
                .send(Queued::File(path.to_string()))
                .await
                .is_err()
            {
                return Err(self.failure().await);
            }
        }
        Ok(())
    }

    /// The list starts again in a cleared folder: every object uploaded so far is deleted (a
    /// backup never mixes two points in time), and the uploads start again with what comes.
    pub async fn restart(&mut self) -> Result<(), StoreError> {
        if self.sender.send(Queued::Restart).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Waits until every queued file is uploaded; the first failure (one that
    /// [`ItemUploads::send`] returned already is not returned again).
    pub async fn finish(mut self) -> Result<(), StoreError> {
        let (closed, _) = tokio::sync::mpsc::channel(1);
        drop(std::mem::replace(&mut self.sender, closed));
        match self.task.take() {
            Some(task) => joined(task.await),
            None => Ok(()),
        }
    }

    /// Stops the uploads where they are; whether any was started (the bucket may hold some).
    pub fn stop(self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Why the queue closed early: the failure the uploads ended with.
    async fn failure(&mut self) -> StoreError {
        let stopped = || StoreError::Interrupted(Interrupted("the uploads were stopped".into()));
        match self.task.take() {
            Some(task) => joined(task.await).err().unwrap_or_else(stopped),
            None => stopped(),
        }
    }
}

fn joined(done: Result<Result<(), StoreError>, tokio::task::JoinError>) -> Result<(), StoreError> {
    match done {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(StoreError::Interrupted(Interrupted(
            "the uploads were stopped".into(),
        ))),
    }
}

impl Drop for ItemUploads {
    /// Stops the uploads in flight (their tasks end with the queue's).
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Uploads what the writer queues (see [`Publish::stream`]) until the queue is closed. A file
/// queued twice (written again) is uploaded again once the others are done, so that its last
/// content is what stays.
async fn upload_queue(
    s3: S3Store,
    name: String,
    dir: PathBuf,
    mut queue: tokio::sync::mpsc::Receiver<Queued>,
    started: Arc<AtomicBool>,
) -> Result<(), StoreError> {
    let mut uploads = s3.uploads(UPLOADS);
    let mut sent: HashSet<String> = HashSet::new();
    let mut again: BTreeSet<String> = BTreeSet::new();
    while let Some(queued) = queue.recv().await {
        match queued {
            Queued::File(path) => {
                if sent.contains(&path) {
                    again.insert(path);
                    continue;
                }
                let bytes = read(&dir.join(&path))?;
                started.store(true, Ordering::SeqCst);
                uploads.put(&format!("{name}/{path}"), bytes).await?;
                sent.insert(path);
            }
            Queued::Restart => {
                std::mem::replace(&mut uploads, s3.uploads(UPLOADS))
                    .finish()
                    .await?;
                for path in sent.drain() {
                    s3.delete(&format!("{name}/{path}")).await?;
                }
                again.clear();
            }
        }
    }
    uploads.finish().await?;
    for path in again {
        s3.put(&format!("{name}/{path}"), read(&dir.join(&path))?)
            .await?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs::read(path).map_err(|source| StoreError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// The regular files of a backup folder, relative, sorted; anything else is refused.
fn files_of(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new(), 1)];
    while let Some((path, prefix, depth)) = pending.pop() {
        let io = |source| StoreError::Io {
            action: "read",
            path: path.clone(),
            source,
        };
        for entry in fs::read_dir(&path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let file_type = entry.file_type().map_err(io)?;
            let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if file_type.is_dir() && depth < MAX_DEPTH {
                pending.push((entry.path(), format!("{relative}/"), depth + 1));
            } else if file_type.is_file() {
                files.push(relative);
            } else {
                return Err(StoreError::Folder(FolderError::NotABackup {
                    path: entry.path(),
                    reason: "only regular files are copied".into(),
                }));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Copies the backup folder `source` into `root` as `name`: into a hidden staging folder in
/// `root` first, verified there (every sha256), then renamed into place, never over an existing
/// backup of that name. Returns the new folder.
pub fn copy_to_folder(
    source: &Path,
    root: &Path,
    name: &str,
    cancel: &CancellationToken,
) -> Result<PathBuf, StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|source| StoreError::Io {
            action: "create the backup directory",
            path: root.to_path_buf(),
            source,
        })?;
    let taken = || {
        root.join(name).symlink_metadata().is_ok()
            || root
                .join(format!("{name}{PARTIAL_SUFFIX}"))
                .symlink_metadata()
                .is_ok()
    };
    let exists = || StoreError::AlreadyExists {
        name: name.to_string(),
        location: root.display().to_string(),
    };
    if taken() {
        return Err(exists());
    }
    // Hidden (`list` passes over dot folders) and in `root`, so the rename cannot cross file
    // systems; removed when dropped.
    let staging = tempfile::Builder::new()
        .prefix(".mlbackup-copy-")
        .tempdir_in(root)
        .map_err(|source| StoreError::Io {
            action: "create a staging folder in",
            path: root.to_path_buf(),
            source,
        })?;
    let dir = staging.path().join(name);
    create_private_dir(&dir)?;
    // Ctrl-C (here or before) drops the staging folder: nothing of the copy is left.
    let interrupted = || {
        StoreError::Interrupted(Interrupted(format!(
            "interrupted before the copy was complete; nothing was written to {}",
            root.display()
        )))
    };
    for file in files_of(source)? {
        if cancel.is_cancelled() {
            return Err(interrupted());
        }
        write_new(&dir, &file, &read(&source.join(&file))?)?;
    }
    let copied = Backup::open(&dir)?;
    let verification = copied.verify()?;
    if let Some(problem) = verification.problems.first() {
        return Err(StoreError::Folder(FolderError::NotABackup {
            path: dir.join(&problem.path),
            reason: format!("the copy does not verify: {}", problem.detail),
        }));
    }
    if let Ok(dir) = fs::File::open(&dir) {
        let _ = rustix::fs::syncfs(&dir);
    }
    let target = root.join(name);
    if taken() {
        return Err(exists());
    }
    if cancel.is_cancelled() {
        return Err(interrupted());
    }
    fs::rename(&dir, &target).map_err(|source| StoreError::Io {
        action: "rename the copy to",
        path: target.clone(),
        source,
    })?;
    mlbackup_helper::files::sync_dir(root);
    Ok(target)
}

/// Verifies what was uploaded under the claimed name against the manifest in `dir` (not yet
/// uploaded): mirrors the objects back and checks every sha256, so a copy is verified on
/// arrival before its manifest makes it visible.
pub async fn verify_uploaded(publish: &Publish, dir: &Path) -> Result<(), StoreError> {
    let found = mirror(&publish.s3, &publish.name, Read::Everything).await?;
    // The mirror has no manifest yet (`NAME.partial`): give it the one about to be uploaded.
    write_new(
        &found.backup.dir,
        MANIFEST_FILE,
        &read(&dir.join(MANIFEST_FILE))?,
    )?;
    let renamed = found.backup.dir.with_file_name(&publish.name);
    fs::rename(&found.backup.dir, &renamed).map_err(|source| StoreError::Io {
        action: "rename",
        path: renamed.clone(),
        source,
    })?;
    let verification = Backup::open(&renamed)?.verify()?;
    if let Some(problem) = verification.problems.first() {
        return Err(StoreError::StrangeObject {
            key: url_of(&publish.s3, &format!("{}/{}", publish.name, problem.path)),
            location: location_of(&publish.s3),
            reason: "the uploaded copy does not verify",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{AwsVars, Secret};
    use crate::location::Location;
    use crate::location::aws;

    /// A store that is never asked anything (no server behind it).
    fn store() -> S3Store {
        mlbackup_testkit::tls::install_crypto_provider();
        let Ok(Location::S3(location)) = Location::parse("s3://team-backups/prod".as_ref()) else {
            panic!("an s3:// location");
        };
        let vars = AwsVars {
            endpoint_url: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("AKIDTEST".into()),
            secret_access_key: Some(Secret::new("secret".into())),
            ..AwsVars::default()
        };
        let home = tempfile::tempdir().unwrap();
        let settings = aws::resolve(&vars, Some(home.path())).unwrap();
        S3Store::open(&location, &settings).unwrap().store
    }

    fn object(path: &str, size: u64) -> StoredObject {
        StoredObject {
            path: path.into(),
            size,
            modified: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_keys_a_backup_folder_can_hold_are_mirrored() {
        let s3 = store();
        for fine in [
            "manifest.json",
            "ns/a.yaml",
            "ns/a.yaml.age",
            "journal.jsonl",
        ] {
            check_path(&s3, "nightly", &object(fine, 10)).unwrap();
        }
        for (bad, why) in [
            ("ns/deeper/a.yaml", "at most one folder deep"),
            ("../a.yaml", "no file name"),
            ("ns/..", "no file name"),
            ("ns//a.yaml", "at most one folder deep"),
        ] {
            let err = check_path(&s3, "nightly", &object(bad, 10)).unwrap_err();
            assert!(
                err.to_string().contains("is not a file of a backup"),
                "{bad}: {err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("s3://team-backups/prod/nightly/{bad}")),
                "named in the bucket's terms: {err}"
            );
            let StoreError::StrangeObject { reason, .. } = err else {
                panic!("{bad}: {err:?}");
            };
            assert!(reason.contains(why), "{bad}: {reason}");
        }
        let err =
            check_path(&s3, "nightly", &object("ns/a.yaml", MAX_OBJECT_BYTES + 1)).unwrap_err();
        assert!(
            err.to_string().contains("is not a file of a backup"),
            "{err}"
        );
    }

    #[test]
    fn a_copy_into_a_folder_is_verified_and_never_replaces_a_backup() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("source");
        let mut writer =
            BackupWriter::create(&source, Some("nightly"), chrono::Local::now()).unwrap();
        writer
            .write_item("dr", "a", "deployment", "u", "1", b"apiVersion: lrs.datarobot.com/v1\nkind: LongRunningService\nmetadata:\n  name: a\n  namespace: dr\n")
            .unwrap();
        let info = folder::BackupInfo {
            created_at: chrono::Utc::now(),
            cluster: folder::ClusterRef {
                server: "https://127.0.0.1:6443".into(),
                context: None,
                id: Some("uid".into()),
            },
            resource: folder::ResourceRef {
                group: "lrs.datarobot.com".into(),
                version: "v1".into(),
                kind: "LongRunningService".into(),
                plural: "lrs".into(),
            },
            selector: String::new(),
            namespaces: Vec::new(),
        };
        let (dir, _) = writer.finish(info).unwrap();
        let target = root.path().join("target");
        // Ctrl-C before or during the copy: an interruption, and nothing at the destination.
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let err = copy_to_folder(&dir, &target, "nightly", &cancelled).unwrap_err();
        assert!(matches!(err, StoreError::Interrupted(_)), "{err}");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        let copied = copy_to_folder(&dir, &target, "nightly", &CancellationToken::new()).unwrap();
        assert_eq!(copied, target.join("nightly"));
        assert_eq!(
            std::fs::read(copied.join("dr/a.yaml")).unwrap(),
            std::fs::read(dir.join("dr/a.yaml")).unwrap()
        );
        let names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["nightly"], "no staging folder is left");
        let err = copy_to_folder(&dir, &target, "nightly", &CancellationToken::new()).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");

        // A file altered on the way does not verify: nothing appears at the destination.
        std::fs::write(dir.join("dr/a.yaml"), b"changed").unwrap();
        let err = copy_to_folder(&dir, &target, "other", &CancellationToken::new()).unwrap_err();
        assert!(err.to_string().contains("a.yaml"), "{err}");
        assert!(!target.join("other").exists());
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
    }
}
