//! Writing one backup: the `.partial` folder reserved under a free name, each object's file
//! written atomically, the manifest last, then the rename to the final name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, Utc};
use mlbackup_helper::files::sync_dir;

use super::name::{MAX_NAME_ATTEMPTS, PARTIAL_SUFFIX, default_name, item_file_name, validate_name};
use super::{
    BackupStatus, ClusterRef, FORMAT_VERSION, FolderError, MANIFEST_FILE, Manifest, ManifestItem,
    ResourceRef, io_error, sha256_hex,
};

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
    items: Vec<ManifestItem>,
    namespaces_created: BTreeSet<String>,
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
                    items: Vec::new(),
                    namespaces_created: BTreeSet::new(),
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

    /// The final name of the backup (without `.partial`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `.partial` directory being written.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `<namespace>/<name>.yaml` (see [`item_file_name`] for long names) atomically
    /// (temp file, rename; 0600) and records it. Writing the same object again replaces the
    /// file and its record.
    pub fn write_item(
        &mut self,
        namespace: &str,
        name: &str,
        lrs_type: &str,
        uid: &str,
        resource_version: &str,
        yaml: &[u8],
    ) -> Result<&ManifestItem, FolderError> {
        // Names come from the API server: only what a real one accepts becomes a file name.
        if !crate::object::is_namespace_name(namespace) || !crate::object::is_object_name(name) {
            return Err(FolderError::InvalidItem {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
        let namespace_dir = self.dir.join(namespace);
        if !self.namespaces_created.contains(namespace) {
            create_private_dir(&namespace_dir)?;
            self.namespaces_created.insert(namespace.to_string());
        }
        let file_name = item_file_name(name);
        // Not fsynced one by one: `make_items_durable` flushes them all at once before the
        // manifest (the mark of a complete backup) is written.
        let path = namespace_dir.join(&file_name);
        mlbackup_helper::files::write_atomically_unsynced(&path, yaml)
            .map_err(io_error("write", &path))?;
        let item = ManifestItem {
            path: format!("{namespace}/{file_name}"),
            namespace: namespace.to_string(),
            name: name.to_string(),
            r#type: lrs_type.to_string(),
            uid: uid.to_string(),
            resource_version: resource_version.to_string(),
            sha256: sha256_hex(yaml),
            bytes: yaml.len() as u64,
        };
        let index = match self.items.iter().position(|old| old.path == item.path) {
            Some(index) => {
                self.items[index] = item;
                index
            }
            None => {
                self.items.push(item);
                self.items.len() - 1
            }
        };
        Ok(&self.items[index])
    }

    pub fn items(&self) -> &[ManifestItem] {
        &self.items
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

    /// Writes `manifest.json` (status complete) last, atomically, then renames the `.partial`
    /// directory to its final name. Returns the final directory and the manifest.
    pub fn finish(self, info: BackupInfo) -> Result<(PathBuf, Manifest), FolderError> {
        let manifest = self.manifest(info, BackupStatus::Complete, Vec::new());
        self.make_items_durable()?;
        write_manifest(&self.dir, &manifest)?;
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
        sync_dir(&self.root);
        Ok((final_dir, manifest))
    }

    /// Leaves the folder `.partial` with a manifest of status partial that lists `errors`
    /// (what failed, what is missing). Returns the directory and the manifest.
    pub fn abandon(
        self,
        info: BackupInfo,
        errors: Vec<String>,
    ) -> Result<(PathBuf, Manifest), FolderError> {
        let manifest = self.manifest(info, BackupStatus::Partial, errors);
        self.make_items_durable()?;
        write_manifest(&self.dir, &manifest)?;
        Ok((self.dir, manifest))
    }

    /// Makes the item files and their renames durable before the manifest vouches for them:
    /// one `syncfs` instead of an fsync per file (thousands of them cost seconds on a busy disk).
    fn make_items_durable(&self) -> Result<(), FolderError> {
        let dir = File::open(&self.dir).map_err(io_error("open", &self.dir))?;
        rustix::fs::syncfs(&dir).map_err(|errno| io_error("flush to disk", &self.dir)(errno.into()))
    }

    fn manifest(&self, info: BackupInfo, status: BackupStatus, errors: Vec<String>) -> Manifest {
        let mut items = self.items.clone();
        items.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: info.created_at,
            finished_at: Some(Utc::now()),
            cluster: info.cluster,
            resource: info.resource,
            selector: info.selector,
            namespaces: info.namespaces,
            counts_by_type: count_by(&items, |item| &item.r#type),
            counts_by_namespace: count_by(&items, |item| &item.namespace),
            items,
            status,
            errors,
        }
    }
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

fn create_private_dir(dir: &Path) -> Result<(), FolderError> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_error("create the directory", dir)(err))
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one (see
/// `mlbackup_helper::files::write_atomically`, shared with the deployment snapshot).
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), FolderError> {
    mlbackup_helper::files::write_atomically(path, bytes).map_err(io_error("write", path))
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), FolderError> {
    let path = dir.join(MANIFEST_FILE);
    let mut json =
        serde_json::to_vec_pretty(manifest).map_err(|source| FolderError::BadManifest {
            path: path.clone(),
            source,
        })?;
    json.push(b'\n');
    write_file_atomically(&path, &json)?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let item = writer
            .write_item("dr", "a", "deployment", "u", "2", b"new")
            .unwrap();
        assert_eq!(item.resource_version, "2");
        assert_eq!(writer.items().len(), 1);
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
        assert!(writer.items().is_empty());
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
