//! One writer per location: the lock a scheduled run holds on its prefix or folder while it
//! writes and prunes, and a manual `prune --yes` while it deletes (`.mlbackup-lock`, JSON:
//! holder, started, lease end), created create-only so that of two runs exactly one goes on, and
//! taken over once its lease has passed (a run killed before it could release it).
//!
//! Taking over is a compare-and-swap on the stale lock itself, so that of two runs finding the
//! same stale lock exactly one takes it: in a bucket a put with `If-Match` on the ETag that was
//! read (S3 decides it atomically); in a folder a rewrite in place under an exclusive `flock`
//! of the file, after checking that the file is still the one at the path and still holds the
//! stale record. (Deleting the stale lock and creating it again would not do: a run that read
//! the stale lock late could delete the lock another run had just created.) Releasing checks
//! that the lock is still this run's, so a run whose lease passed never removes the lock of
//! the run that took over.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::location::s3::{S3Error, S3Store};

use super::{Kind, Store, StoreError};

/// The lock's name in the location: dot-prefixed, so never taken for a backup.
pub const LOCK_FILE: &str = ".mlbackup-lock";
/// The largest lock read: a few hundred bytes of JSON.
const MAX_LOCK_BYTES: u64 = 64 << 10;
/// How often a lock that vanished between the look and the take is tried again.
const ATTEMPTS: u32 = 3;

/// What a lock says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRecord {
    /// Who holds it: the pod's name (`HOSTNAME`) and the process id.
    pub holder: String,
    pub started: DateTime<Utc>,
    /// Until when it holds; past it, another run may take it over.
    pub lease_until: DateTime<Utc>,
}

/// A lock held by this process; [`Lock::release`] removes it.
#[derive(Debug)]
pub struct Lock {
    pub record: LockRecord,
    /// The stale lock this one replaced, when it was taken over.
    pub taken_over: Option<LockRecord>,
    held: Held,
}

#[derive(Debug)]
enum Held {
    Folder(PathBuf),
    Bucket(S3Store),
}

/// What was found where a lock was wanted.
enum Attempt {
    Held(Lock),
    /// It vanished between the look and the take: try again.
    Vanished,
}

impl Store {
    /// Takes the location's lock for `record.holder` until `record.lease_until`: created when
    /// there is none, taken over when the one there is past its lease (said in
    /// [`Lock::taken_over`]), refused with [`StoreError::Locked`] while another run's is live.
    pub async fn lock(&self, record: LockRecord, now: DateTime<Utc>) -> Result<Lock, StoreError> {
        self.check_writable("take the lock")?;
        let location = self.shown().display().to_string();
        let bytes = serde_json::to_vec_pretty(&record).expect("a lock record serialises");
        for _ in 0..ATTEMPTS {
            let attempt = match &self.kind {
                Kind::Folder { root, .. } => folder_lock(root, &record, &bytes, now, &location)?,
                Kind::Bucket(s3) => bucket_lock(s3, &record, &bytes, now, &location).await?,
            };
            if let Attempt::Held(lock) = attempt {
                return Ok(lock);
            }
        }
        Err(StoreError::Locked {
            location,
            holder: "another run (it kept taking and releasing the lock)".into(),
            lease_until: None,
        })
    }
}

impl Lock {
    /// Removes the lock when it is still this run's; `Ok(false)` when another run took it over
    /// meanwhile (this run's lease passed) and it was left alone.
    pub async fn release(self) -> Result<bool, StoreError> {
        match &self.held {
            Held::Folder(path) => release_file(path, &self.record),
            Held::Bucket(s3) => {
                // No conditional delete in S3 everywhere: read, compare, delete. A take-over
                // can only happen past the lease, so the window is this run's lease having
                // passed in the milliseconds between the read and the delete.
                match s3.get(LOCK_FILE, MAX_LOCK_BYTES).await {
                    Ok(bytes) if parse(&bytes).as_ref() == Some(&self.record) => {
                        s3.delete(LOCK_FILE).await?;
                        Ok(true)
                    }
                    Ok(_) | Err(S3Error::NotFound { .. }) => Ok(false),
                    Err(err) => Err(err.into()),
                }
            }
        }
    }
}

fn parse(bytes: &[u8]) -> Option<LockRecord> {
    serde_json::from_slice(bytes).ok()
}

/// A lock found in place: refused while live; `None` when stale (may be taken over).
fn live(
    found: Option<&LockRecord>,
    now: DateTime<Utc>,
    location: &str,
    key: &str,
) -> Result<(), StoreError> {
    match found {
        Some(found) if found.lease_until > now => Err(StoreError::Locked {
            location: location.to_string(),
            holder: found.holder.clone(),
            lease_until: Some(found.lease_until),
        }),
        Some(_) => Ok(()),
        None => Err(StoreError::BadLock {
            key: key.to_string(),
        }),
    }
}

async fn bucket_lock(
    s3: &S3Store,
    record: &LockRecord,
    bytes: &[u8],
    now: DateTime<Utc>,
    location: &str,
) -> Result<Attempt, StoreError> {
    let held = || Lock {
        record: record.clone(),
        taken_over: None,
        held: Held::Bucket(s3.clone()),
    };
    match s3.put_new(LOCK_FILE, bytes.to_vec()).await {
        Ok(()) => return Ok(Attempt::Held(held())),
        Err(S3Error::AlreadyExists { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    let (found, e_tag) = match s3.get_tagged(LOCK_FILE, MAX_LOCK_BYTES).await {
        Ok(found) => found,
        Err(S3Error::NotFound { .. }) => return Ok(Attempt::Vanished),
        Err(err) => return Err(err.into()),
    };
    let found = parse(&found);
    let key = format!("{location}/{LOCK_FILE}");
    live(found.as_ref(), now, location, &key)?;
    let e_tag = e_tag.ok_or(StoreError::BadLock { key })?;
    match s3
        .replace_if_unchanged(LOCK_FILE, bytes.to_vec(), e_tag)
        .await
    {
        Ok(()) => Ok(Attempt::Held(Lock {
            taken_over: found,
            ..held()
        })),
        // Another run took it over first (or released it): its lock stands.
        Err(S3Error::AlreadyExists { .. } | S3Error::NotFound { .. }) => Err(StoreError::Locked {
            location: location.to_string(),
            holder: "another run (it took over the stale lock first)".into(),
            lease_until: None,
        }),
        Err(err) => Err(err.into()),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

fn folder_lock(
    root: &Path,
    record: &LockRecord,
    bytes: &[u8],
    now: DateTime<Utc>,
    location: &str,
) -> Result<Attempt, StoreError> {
    fs::create_dir_all(root).map_err(io("create", root))?;
    let path = root.join(LOCK_FILE);
    let held = |taken_over| Lock {
        record: record.clone(),
        taken_over,
        held: Held::Folder(path.clone()),
    };
    // Written beside it and linked into place create-only, so that no run ever reads a lock
    // half-written.
    let mut temp = tempfile::Builder::new()
        .prefix(".mlbackup-lock-")
        .tempfile_in(root)
        .map_err(io("create a file in", root))?;
    temp.write_all(bytes).map_err(io("write", temp.path()))?;
    temp.as_file()
        .sync_all()
        .map_err(io("write", temp.path()))?;
    match temp.persist_noclobber(&path) {
        Ok(_) => return Ok(Attempt::Held(held(None))),
        Err(err) if err.error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(io("create", &path)(err.error)),
    }
    let Some((mut file, found)) = open_locked(&path)? else {
        return Ok(Attempt::Vanished);
    };
    let key = path.display().to_string();
    live(found.as_ref(), now, location, &key)?;
    // Still the stale record, under the flock every take-over and release holds: replace it.
    file.set_len(0).map_err(io("write", &path))?;
    file.rewind().map_err(io("write", &path))?;
    file.write_all(bytes).map_err(io("write", &path))?;
    file.sync_all().map_err(io("write", &path))?;
    Ok(Attempt::Held(held(found)))
}

/// Opens the lock file at `path` for a change, under an exclusive `flock` (released when the
/// file is closed), and reads it; `None` when no file is at the path any more, or another one
/// (released and created again while this waited).
fn open_locked(path: &Path) -> Result<Option<(File, Option<LockRecord>)>, StoreError> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io("open", path)(err)),
    };
    file.lock().map_err(io("lock", path))?;
    let opened = file.metadata().map_err(io("read", path))?;
    match fs::metadata(path) {
        Ok(now) if now.ino() == opened.ino() && now.dev() == opened.dev() => {}
        Ok(_) => return Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io("read", path)(err)),
    }
    let mut bytes = Vec::new();
    Read::by_ref(&mut file)
        .take(MAX_LOCK_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io("read", path))?;
    Ok(Some((file, parse(&bytes))))
}

fn release_file(path: &Path, record: &LockRecord) -> Result<bool, StoreError> {
    let Some((_file, found)) = open_locked(path)? else {
        return Ok(false);
    };
    if found.as_ref() != Some(record) {
        return Ok(false);
    }
    fs::remove_file(path).map_err(io("remove", path))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::env::Env;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn record(holder: &str, started: &str) -> LockRecord {
        let started = at(started);
        LockRecord {
            holder: holder.into(),
            started,
            lease_until: started + TimeDelta::hours(1),
        }
    }

    fn store(dir: &Path) -> Store {
        Store::open(Some(dir), false, &Env::default()).unwrap()
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_live_lock_is_refused_naming_its_holder_and_released_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let now = at("2026-11-29T03:00:00Z");
        let first = block_on(store.lock(record("pod-a", "2026-11-29T03:00:00Z"), now)).unwrap();
        assert_eq!(first.taken_over, None);
        let written: LockRecord =
            serde_json::from_slice(&fs::read(dir.path().join(LOCK_FILE)).unwrap()).unwrap();
        assert_eq!(written, first.record);
        let refused = block_on(store.lock(record("pod-b", "2026-11-29T03:10:00Z"), now))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("`pod-a`"), "{refused}");
        assert!(refused.contains("2026-11-29 04:00:00 UTC"), "{refused}");
        assert!(block_on(first.release()).unwrap());
        assert!(!dir.path().join(LOCK_FILE).exists());
        let again = block_on(store.lock(record("pod-b", "2026-11-29T03:10:00Z"), now)).unwrap();
        assert_eq!(again.taken_over, None);
    }

    #[test]
    fn a_stale_lock_is_taken_over_once_and_its_old_holder_cannot_release_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let old = block_on(store.lock(
            record("pod-a", "2026-11-29T03:00:00Z"),
            at("2026-11-29T03:00:00Z"),
        ))
        .unwrap();
        let later = at("2026-11-29T05:00:00Z");
        let new = block_on(store.lock(record("pod-b", "2026-11-29T05:00:00Z"), later)).unwrap();
        assert_eq!(
            new.taken_over.as_ref().map(|r| r.holder.as_str()),
            Some("pod-a")
        );
        // A third run at the same moment finds pod-b's lock live.
        let refused = block_on(store.lock(record("pod-c", "2026-11-29T05:00:00Z"), later))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("`pod-b`"), "{refused}");
        // The old holder, finishing late, leaves pod-b's lock alone.
        assert!(!block_on(old.release()).unwrap());
        let written: LockRecord =
            serde_json::from_slice(&fs::read(dir.path().join(LOCK_FILE)).unwrap()).unwrap();
        assert_eq!(written.holder, "pod-b");
        assert!(block_on(new.release()).unwrap());
    }

    #[test]
    fn an_unreadable_lock_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), "not json").unwrap();
        let err = block_on(store(dir.path()).lock(
            record("pod-a", "2026-11-29T03:00:00Z"),
            at("2026-11-29T03:00:00Z"),
        ))
        .unwrap_err();
        assert!(matches!(err, StoreError::BadLock { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            "not json"
        );
    }
}
