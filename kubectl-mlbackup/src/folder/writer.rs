//! Writing one backup: the `.partial` folder reserved under a free name, each object's file
//! written atomically, the manifest last, then the rename to the final name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, Utc};
use mlbackup_helper::files::sync_dir;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::name::{MAX_NAME_ATTEMPTS, PARTIAL_SUFFIX, default_name, item_file_name, validate_name};
use super::records::{ItemRecords, ItemRef};
use super::{
    BackupStatus, CRD_FILE, ClusterRef, ENCRYPTED_FORMAT_VERSION, FORMAT_VERSION, FolderError,
    ItemTotals, MANIFEST_FILE, Manifest, ManifestItem, ResourceRef, SavedFile, io_error,
};
use crate::digest::sha256_from_hex;
use crate::encryption::{FILE_SUFFIX, Recipients, encrypt_batch};

const DIR_MODE: u32 = 0o700;

/// What the backup command knows about the run; the writer adds items, counts, status and
/// `finishedAt`.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    pub created_at: DateTime<Utc>,
    pub cluster: ClusterRef,
    pub resource: ResourceRef,
    pub selector: String,
    pub namespaces: Vec<String>,
}

/// Writes one backup folder: `<root>/<name>.partial/` while writing, `<root>/<name>/` once
/// [`BackupWriter::finish`] has written the manifest.
#[derive(Debug)]
pub struct BackupWriter {
    root: PathBuf,
    name: String,
    dir: PathBuf,
    /// What the manifest will list: compact records, not the objects (see `records`).
    items: ItemRecords,
    namespaces_created: BTreeSet<String>,
    /// Set: every item is encrypted to them (format version 2).
    recipients: Option<Recipients>,
    /// False for a staging folder: see [`BackupWriter::staging`].
    flush: bool,
    /// [`CRD_FILE`] once written.
    crd: Option<SavedFile>,
}

/// One object to write: where it goes, what the manifest records of it, and its YAML.
#[derive(Debug, Clone, Copy)]
pub struct ItemToWrite<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub lrs_type: &'a str,
    pub uid: &'a str,
    pub resource_version: &'a str,
    pub yaml: &'a [u8],
}

impl BackupWriter {
    /// Creates `<root>/<name>.partial/` (0700; `root` is created when missing).
    ///
    /// Without a requested name the name is `lrs_backup_YYYY_MM_DD_HH_MM` of `started`, with
    /// `_2`, `_3`, ... appended when a backup of that name (finished or not) exists, even one
    /// being created concurrently. A requested name is validated and never altered: if it is
    /// taken, that is an error.
    pub fn create(
        root: &Path,
        requested_name: Option<&str>,
        started: DateTime<Local>,
    ) -> Result<BackupWriter, FolderError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)
            .map_err(io_error("create the backup directory", root))?;
        let (base, may_add_suffix) = match requested_name {
            Some(name) => {
                validate_name(name)?;
                (name.to_string(), false)
            }
            None => (default_name(started), true),
        };
        for attempt in 1..=MAX_NAME_ATTEMPTS {
            let name = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}_{attempt}")
            };
            if let Some(dir) = reserve(root, &name)? {
                return Ok(BackupWriter {
                    root: root.to_path_buf(),
                    name,
                    dir,
                    items: ItemRecords::default(),
                    namespaces_created: BTreeSet::new(),
                    recipients: None,
                    flush: true,
                    crd: None,
                });
            }
            if !may_add_suffix {
                return Err(FolderError::AlreadyExists {
                    name,
                    root: root.to_path_buf(),
                });
            }
        }
        Err(FolderError::NoFreeName {
            base,
            root: root.to_path_buf(),
        })
    }

    /// Marks the folder as a staging copy (a bucket's backup, uploaded from it and removed):
    /// it is not flushed to disk, since the bucket holds the backup. A flush there waits for
    /// every file written on that file system meanwhile, the S3 server's own ones included
    /// when it runs on this machine.
    pub fn staging(mut self) -> BackupWriter {
        self.flush = false;
        self
    }

    /// The final name of the backup (without `.partial`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `.partial` directory being written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Encrypts every item written from now on to `recipients` (`None`: writes them as YAML).
    /// Set before the first item: a backup is encrypted whole or not at all.
    pub fn encrypt_to(&mut self, recipients: Option<Recipients>) {
        debug_assert_eq!(self.items.len(), 0, "set before the first item");
        self.recipients = recipients;
    }

    /// Writes `<namespace>/<name>.yaml` (see [`item_file_name`] for long names) atomically
    /// (temp file, rename; 0600; made durable by `finish`/`abandon`) and records it. Writing the
    /// same object again replaces the file and its record. Encrypted, the file is
    /// `<namespace>/<name>.yaml.age`. (The backup command writes batches: [`Self::write_items`].)
    #[cfg(test)]
    pub fn write_item(
        &mut self,
        namespace: &str,
        name: &str,
        lrs_type: &str,
        uid: &str,
        resource_version: &str,
        yaml: &[u8],
    ) -> Result<(), FolderError> {
        self.write_items(&[ItemToWrite {
            namespace,
            name,
            lrs_type,
            uid,
            resource_version,
            yaml,
        }])
    }

    /// [`BackupWriter::write_item`] for several objects: when encrypting, they are sealed on
    /// every core at once (one X25519 exchange per item and recipient is most of the cost of
    /// an encrypted backup), then written in order. An invalid name stops the batch there, the
    /// objects before it written, as one by one.
    pub fn write_items(&mut self, items: &[ItemToWrite<'_>]) -> Result<(), FolderError> {
        // Names come from the API server: only what a real one accepts becomes a file name.
        let valid = items
            .iter()
            .position(|item| {
                !crate::object::is_namespace_name(item.namespace)
                    || !crate::object::is_object_name(item.name)
            })
            .unwrap_or(items.len());
        let (good, rest) = items.split_at(valid);
        let sealed = match &self.recipients {
            Some(recipients) => {
                let yamls: Vec<&[u8]> = good.iter().map(|item| item.yaml).collect();
                Some(encrypt_batch(&yamls, recipients)?)
            }
            None => None,
        };
        for (index, item) in good.iter().enumerate() {
            let (bytes, plaintext_sha256, suffix) = match &sealed {
                Some(sealed) => {
                    let sealed = &sealed[index];
                    (
                        sealed.ciphertext.as_slice(),
                        sha256_from_hex(&sealed.hashes.plaintext_sha256),
                        FILE_SUFFIX,
                    )
                }
                None => (item.yaml, None, ""),
            };
            self.write_file(item, bytes, plaintext_sha256, suffix)?;
        }
        match rest.first() {
            Some(bad) => Err(FolderError::InvalidItem {
                namespace: bad.namespace.to_string(),
                name: bad.name.to_string(),
            }),
            None => Ok(()),
        }
    }

    fn write_file(
        &mut self,
        item: &ItemToWrite<'_>,
        bytes: &[u8],
        plaintext_sha256: Option<[u8; 32]>,
        suffix: &str,
    ) -> Result<(), FolderError> {
        let namespace = item.namespace;
        let namespace_dir = self.dir.join(namespace);
        if !self.namespaces_created.contains(namespace) {
            create_private_dir(&namespace_dir)?;
            self.namespaces_created.insert(namespace.to_string());
        }
        let file_name = format!("{}{suffix}", item_file_name(item.name));
        // Not fsynced one by one: `make_durable` flushes them all at once before the folder
        // gets its final name (the mark of a complete backup).
        let path = namespace_dir.join(&file_name);
        mlbackup_helper::files::write_atomically_unsynced(&path, bytes)
            .map_err(io_error("write", &path))?;
        self.items.push(ItemRef {
            path: &format!("{namespace}/{file_name}"),
            namespace,
            name: item.name,
            r#type: item.lrs_type,
            uid: item.uid,
            resource_version: item.resource_version,
            sha256: Sha256::digest(bytes).into(),
            bytes: bytes.len() as u64,
            plaintext_sha256,
        });
        Ok(())
    }

    /// Writes [`CRD_FILE`] (the resource's definition as YAML), atomically, and records it for
    /// the manifest. Not encrypted (see [`CRD_FILE`]).
    pub fn write_definition(&mut self, yaml: &[u8]) -> Result<(), FolderError> {
        let path = self.dir.join(CRD_FILE);
        mlbackup_helper::files::write_atomically_unsynced(&path, yaml)
            .map_err(io_error("write", &path))?;
        self.crd = Some(SavedFile {
            path: CRD_FILE.to_string(),
            sha256: crate::digest::sha256_hex(yaml),
            bytes: yaml.len() as u64,
        });
        Ok(())
    }

    /// How many objects were written so far.
    pub fn written(&self) -> usize {
        self.items.len()
    }

    /// The paths (relative to [`Self::dir`]) of the files written after the first `start`
    /// (a count from [`Self::written`]), in the order they were written: what a bucket's
    /// backup uploads while the rest is being listed.
    pub fn paths_written_since(&self, start: usize) -> impl Iterator<Item = &str> {
        self.items.paths_from(start)
    }

    /// Removes the `.partial` folder: for a backup that failed before capturing anything, so
    /// no empty backup is left behind.
    pub fn discard(self) -> Result<(), FolderError> {
        fs::remove_dir_all(&self.dir).map_err(io_error("remove", &self.dir))
    }

    /// Forgets everything written so far (files included), for a list that starts again: a
    /// backup never mixes objects from two points in time.
    pub fn clear(&mut self) -> Result<(), FolderError> {
        for namespace in std::mem::take(&mut self.namespaces_created) {
            let dir = self.dir.join(&namespace);
            fs::remove_dir_all(&dir).map_err(io_error("clear", &dir))?;
        }
        self.items.clear();
        Ok(())
    }

    /// Writes `manifest.json` (status complete) last, atomically, makes the folder durable,
    /// then renames the `.partial` directory to its final name: the rename is what makes the
    /// backup complete, so the manifest needs no flush of its own before the folder's. Returns
    /// the final directory and the manifest.
    pub fn finish(self, info: BackupInfo) -> Result<(PathBuf, Manifest<ItemTotals>), FolderError> {
        let manifest = self.write_manifest(info, BackupStatus::Complete, Vec::new())?;
        self.make_durable()?;
        let final_dir = self.root.join(&self.name);
        // `rename` would silently replace an empty directory; the reservation in `create`
        // makes this impossible unless someone made one by hand since, so check anyway.
        if final_dir.symlink_metadata().is_ok() {
            return Err(FolderError::AlreadyExists {
                name: self.name,
                root: self.root,
            });
        }
        fs::rename(&self.dir, &final_dir).map_err(io_error("rename the backup", &self.dir))?;
        if self.flush {
            sync_dir(&self.root);
        }
        Ok((final_dir, manifest))
    }

    /// Leaves the folder `.partial` with a manifest of status partial that lists `errors`
    /// (what failed, what is missing). Returns the directory and the manifest.
    pub fn abandon(
        self,
        info: BackupInfo,
        errors: Vec<String>,
    ) -> Result<(PathBuf, Manifest<ItemTotals>), FolderError> {
        let manifest = self.write_manifest(info, BackupStatus::Partial, errors)?;
        self.make_durable()?;
        Ok((self.dir, manifest))
    }

    /// Makes the files of the folder and their renames durable before the folder is renamed to
    /// its final name: one `syncfs` instead of an fsync per file (thousands of them cost seconds
    /// on a busy disk), the manifest included (each fsync more waits for the disk again).
    fn make_durable(&self) -> Result<(), FolderError> {
        if !self.flush {
            return Ok(());
        }
        make_durable(&self.dir)
    }

    /// Streams `manifest.json` from the records (the whole list is never built in memory).
    fn write_manifest(
        &self,
        info: BackupInfo,
        status: BackupStatus,
        errors: Vec<String>,
    ) -> Result<Manifest<ItemTotals>, FolderError> {
        let items = self.items.listed();
        let totals = items.totals();
        let manifest = Manifest {
            format_version: match self.recipients {
                Some(_) => ENCRYPTED_FORMAT_VERSION,
                None => FORMAT_VERSION,
            },
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: info.created_at,
            finished_at: Some(Utc::now()),
            cluster: info.cluster,
            resource: info.resource,
            selector: info.selector,
            namespaces: info.namespaces,
            counts_by_type: items.counts_by_type(),
            counts_by_namespace: items.counts_by_namespace(),
            crd: self.crd.clone(),
            encryption: self.recipients.as_ref().map(Recipients::record),
            items,
            status,
            errors,
        };
        write_manifest(&self.dir, &manifest)?;
        Ok(manifest.with_items(totals))
    }
}

/// Flushes the file system holding `dir` (see [`BackupWriter::make_durable`]).
pub(super) fn make_durable(dir: &Path) -> Result<(), FolderError> {
    let started = std::time::Instant::now();
    let handle = File::open(dir).map_err(io_error("open", dir))?;
    rustix::fs::syncfs(&handle).map_err(|errno| io_error("flush to disk", dir)(errno.into()))?;
    log::debug!(
        "flushed the file system of {} in {} ms",
        dir.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Counts items by one of their fields.
pub fn count_by(
    items: &[ManifestItem],
    key: impl Fn(&ManifestItem) -> &String,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(key(item).clone()).or_insert(0) += 1;
    }
    counts
}

/// Claims `name` under `root` by creating `<name>.partial` (atomic, so two concurrent backups
/// never get the same name), unless a finished backup has that name. `None`: taken.
fn reserve(root: &Path, name: &str) -> Result<Option<PathBuf>, FolderError> {
    if root.join(name).symlink_metadata().is_ok() {
        return Ok(None);
    }
    let partial = root.join(format!("{name}{PARTIAL_SUFFIX}"));
    match fs::DirBuilder::new().mode(DIR_MODE).create(&partial) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(err) => return Err(io_error("create the backup folder", &partial)(err)),
    }
    // A backup that finished between the check above and the creation renamed its `.partial`
    // away; look again so we never end up renaming onto it.
    if root.join(name).symlink_metadata().is_ok() {
        let _ = fs::remove_dir(&partial);
        return Ok(None);
    }
    Ok(Some(partial))
}

pub(super) fn create_private_dir(dir: &Path) -> Result<(), FolderError> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_error("create the directory", dir)(err))
        }
        _ => Ok(()),
    }
}

/// Writes the manifest so that readers see either none or the whole of it (temp file, rename),
/// streamed: the item list of a large backup is never whole in memory. Not flushed: the
/// writer flushes the whole folder next.
pub(super) fn write_manifest(dir: &Path, manifest: &impl Serialize) -> Result<(), FolderError> {
    let path = dir.join(MANIFEST_FILE);
    mlbackup_helper::files::write_atomically_unsynced_with(&path, |out| {
        serde_json::to_writer_pretty(&mut *out, manifest)?;
        out.write_all(b"\n")
    })
    .map_err(io_error("write", &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::catalog::read_manifest;
    use crate::folder::testing::*;
    use crate::folder::*;
    use std::fs;

    #[test]
    fn default_names_follow_the_runbook_and_never_collide() {
        let root = tempfile::tempdir().unwrap();
        let first = BackupWriter::create(root.path(), None, started()).unwrap();
        assert_eq!(first.name(), "lrs_backup_2025_11_21_14_05");
        assert_eq!(
            first.dir(),
            root.path().join("lrs_backup_2025_11_21_14_05.partial")
        );
        // The first is still being written: its `.partial` reserves the name.
        let second = BackupWriter::create(root.path(), None, started()).unwrap();
        assert_eq!(second.name(), "lrs_backup_2025_11_21_14_05_2");
        second.finish(info()).unwrap();
        first.finish(info()).unwrap();
        // Both finished: the final names are taken too.
        let third = BackupWriter::create(root.path(), None, started()).unwrap();
        assert_eq!(third.name(), "lrs_backup_2025_11_21_14_05_3");
        assert_eq!(
            names_in(root.path()),
            [
                "lrs_backup_2025_11_21_14_05",
                "lrs_backup_2025_11_21_14_05_2",
                "lrs_backup_2025_11_21_14_05_3.partial"
            ]
        );
    }

    #[test]
    fn concurrent_backups_get_distinct_names() {
        let root = tempfile::tempdir().unwrap();
        let names: BTreeSet<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let writer = BackupWriter::create(root.path(), None, started()).unwrap();
                        let name = writer.name().to_string();
                        writer.finish(info()).unwrap();
                        name
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(names.len(), 8);
        assert_eq!(names_in(root.path()).len(), 8);
    }

    #[test]
    fn a_requested_name_is_validated_and_never_altered() {
        let root = tempfile::tempdir().unwrap();
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "x.partial",
            "x.deleting",
            "x.deleting_2",
            ".hidden",
            "-rf",
            "a b",
        ] {
            let err = BackupWriter::create(root.path(), Some(bad), started()).unwrap_err();
            assert!(
                matches!(err, FolderError::InvalidName { .. }),
                "{bad}: {err}"
            );
        }
        let writer = BackupWriter::create(root.path(), Some("pre-upgrade_1.2"), started()).unwrap();
        assert_eq!(writer.name(), "pre-upgrade_1.2");
        writer.finish(info()).unwrap();
        let err =
            BackupWriter::create(root.path(), Some("pre-upgrade_1.2"), started()).unwrap_err();
        assert!(matches!(err, FolderError::AlreadyExists { .. }), "{err}");
        assert!(err.hint().unwrap().contains("another --name"));
    }

    #[test]
    fn the_root_is_created_when_missing() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("backups/nested");
        let writer = BackupWriter::create(&root, None, started()).unwrap();
        assert!(writer.dir().is_dir());
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn files_are_private_and_written_atomically() {
        let root = tempfile::tempdir().unwrap();
        let (dir, manifest) = finished_backup(root.path());
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("dr")), 0o700);
        assert_eq!(mode(&dir.join("dr/a.yaml")), 0o600);
        assert_eq!(mode(&dir.join(MANIFEST_FILE)), 0o600);
        assert_eq!(names_in(&dir), ["dr", "manifest.json", "team"]);
        assert_eq!(
            names_in(&dir.join("dr")),
            ["a.yaml", "b.yaml"],
            "no temp files left"
        );
        assert_eq!(manifest.items.len(), 3);
        let written = fs::read(dir.join("dr/a.yaml")).unwrap();
        assert_eq!(written, lrs_yaml("dr", "a", "deployment").as_bytes());
        assert_eq!(manifest.items[0].sha256, sha256_hex(&written));
        assert_eq!(manifest.items[0].bytes, written.len() as u64);
    }

    #[test]
    fn writing_an_object_twice_keeps_one_record() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        writer
            .write_item("dr", "a", "deployment", "u", "1", b"old")
            .unwrap();
        writer
            .write_item("dr", "a", "deployment", "u", "2", b"new")
            .unwrap();
        let (dir, written) = writer.finish(info()).unwrap();
        assert_eq!(written.items, ItemTotals { count: 1, bytes: 3 });
        let manifest = read_manifest(&dir.join(MANIFEST_FILE)).unwrap();
        assert_eq!(manifest.items.len(), 1);
        assert_eq!(manifest.items[0].resource_version, "2");
        assert_eq!(manifest.items[0].sha256, sha256_hex(b"new"));
        assert_eq!(fs::read(dir.join("dr/a.yaml")).unwrap(), b"new");
    }

    #[test]
    fn unsafe_object_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        for (namespace, name) in [
            ("..", "a"),
            ("dr", "../x"),
            ("dr", ""),
            ("dr", ".a"),
            ("dr", "a\x1b[2Jb"),
            ("dr\nx", "a"),
            ("Dr", "a"),
            ("dr", "A"),
            (&"n".repeat(64), "a"),
            ("dr", &"a".repeat(254)),
        ] {
            let err = writer
                .write_item(namespace, name, "", "", "", b"x")
                .unwrap_err();
            assert!(matches!(err, FolderError::InvalidItem { .. }));
        }
        assert_eq!(writer.written(), 0);
    }

    #[test]
    fn an_abandoned_backup_stays_partial_with_its_errors() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        let yaml = lrs_yaml("dr", "a", "deployment");
        writer
            .write_item("dr", "a", "deployment", "u", "7", yaml.as_bytes())
            .unwrap();
        let (dir, manifest) = writer.abandon(info(), vec!["interrupted".into()]).unwrap();
        assert!(dir.ends_with("lrs_backup_2025_11_21_14_05.partial"));
        assert_eq!(manifest.status, BackupStatus::Partial);
        let backup = resolve(root.path(), "lrs_backup_2025_11_21_14_05").unwrap();
        assert_eq!(backup.status, CatalogStatus::Partial);
        let verification = backup.verify().unwrap();
        assert_eq!(verification.problems.len(), 1);
        assert_eq!(verification.problems[0].kind, ProblemKind::Incomplete);
        assert!(verification.problems[0].detail.contains("interrupted"));
    }
}
