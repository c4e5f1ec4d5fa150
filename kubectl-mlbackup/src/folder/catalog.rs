//! Recognising backups on disk (managed, partial, unmanaged) and what `kubectl apply -f` would
//! take instead, listing them under a root, finding one by name or path, and deleting one
//! safely.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use mlbackup_helper::files::is_temp_name;
use mlbackup_helper::text::error_chain;

use super::name::{
    DELETING_SUFFIX, MAX_NAME_ATTEMPTS, NAME_PREFIX, PARTIAL_SUFFIX, is_being_deleted,
    time_from_name, validate_name,
};
use super::{
    BackupStatus, CRD_FILE, ClusterRef, DEPLOYMENTS_FILE, ENCRYPTED_FORMAT_VERSION, FORMAT_VERSION,
    FolderError, JOURNAL_FILE, MANIFEST_FILE, Manifest, NEWEST_FORMAT_VERSION, io_error,
};
use crate::encryption::Identities;

/// How a backup found on disk stands.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CatalogStatus {
    /// Written by the plugin, manifest present, renamed to its final name.
    Complete,
    /// Written by the plugin but not finished (still running, failed or interrupted).
    Partial,
    /// A folder of YAML files without a manifest, like the documented shell loop makes.
    Unmanaged,
}

impl CatalogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogStatus::Complete => "complete",
            CatalogStatus::Partial => "partial",
            CatalogStatus::Unmanaged => "unmanaged",
        }
    }
}

/// A backup folder on disk, recognised by the rules at the top of this module.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The directory's name as it is on disk (with `.partial` for unfinished ones).
    pub name: String,
    pub dir: PathBuf,
    pub status: CatalogStatus,
    /// `None` for unmanaged backups and partial ones killed before writing it.
    pub manifest: Option<Manifest>,
    /// Set when this is no backup but what `kubectl apply -f` would take (see
    /// [`open_for_reading`]).
    pub loose: Option<Loose>,
    /// What opens the items of an encrypted backup (`--identity`); empty: only what needs no
    /// key is read (the ciphertext checked against its hash).
    pub identities: Identities,
}

/// A source of objects that is no backup, read as `kubectl apply -f` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loose {
    /// A folder of any name: its YAML files, flat or one folder deep; other files passed over.
    Folder,
    /// One file (of any name); [`Backup::dir`] is the file itself.
    File,
}

/// One line of `list`.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    pub name: String,
    pub path: PathBuf,
    pub status: CatalogStatus,
    pub created_at: DateTime<Utc>,
    pub cluster: Option<ClusterRef>,
    pub lrs_count: usize,
    /// Empty for unmanaged backups: telling types apart would mean reading every file.
    pub counts_by_type: BTreeMap<String, usize>,
    pub size_bytes: u64,
}

/// A directory under the root that looks like it was meant as a backup but cannot be read.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Unreadable {
    pub name: String,
    pub reason: String,
}

/// Everything under a backup root.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Newest first.
    pub backups: Vec<BackupSummary>,
    pub unreadable: Vec<Unreadable>,
}

impl Catalog {
    /// A catalog in its order, wherever it was read: newest backup first (then by name), the
    /// unreadable by name.
    pub fn sorted(mut backups: Vec<BackupSummary>, mut unreadable: Vec<Unreadable>) -> Catalog {
        backups.sort_by(|a, b| (b.created_at, &b.name).cmp(&(a.created_at, &a.name)));
        unreadable.sort_by(|a, b| a.name.cmp(&b.name));
        Catalog {
            backups,
            unreadable,
        }
    }
}

/// The directory holding the backups: `dir` (`--dir`), else `MLBACKUP_DIR`, else the current
/// directory.
pub fn root(dir: Option<&Path>, env: &crate::env::Env) -> PathBuf {
    dir.or(env.mlbackup_dir.as_deref())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// Lists the backups directly under `root`, newest first. Directories that are not backups are
/// ignored, except ones that look meant as backups (a manifest or an `lrs_backup_` name): those
/// are reported as unreadable, with why.
pub fn catalog(root: &Path) -> Result<Catalog, FolderError> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(FolderError::NoRoot {
                root: root.to_path_buf(),
            });
        }
        Err(err) => return Err(io_error("read the backup directory", root)(err)),
    };
    let mut backups = Vec::new();
    let mut unreadable = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("read the backup directory", root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || name.starts_with('.') {
            continue;
        }
        if is_being_deleted(&name) {
            unreadable.push(Unreadable {
                reason: format!(
                    "left over from an interrupted delete; remove it with `rm -rf {}`",
                    entry.path().display()
                ),
                name,
            });
            continue;
        }
        let dir = entry.path();
        match Backup::open(&dir).and_then(|backup| backup.summary()) {
            Ok(summary) => backups.push(summary),
            // A folder this user may not read may well be a backup (another user's): listing
            // without it would be incomplete, and prune would count without it. Only a name no
            // backup can have (`lost+found`, the file system's own, 0700 root) is passed over.
            Err(err) if err.is_permission_denied() => {
                if validate_name(name.strip_suffix(PARTIAL_SUFFIX).unwrap_or(&name)).is_ok() {
                    return Err(err);
                }
            }
            Err(FolderError::NotABackup { .. })
                if !name.starts_with(NAME_PREFIX) && !dir.join(MANIFEST_FILE).exists() => {}
            Err(err) => unreadable.push(Unreadable {
                name,
                reason: error_chain(&err),
            }),
        }
    }
    Ok(Catalog::sorted(backups, unreadable))
}

/// Finds a backup by name under `root` (also `<name>.partial` when only that exists), or by
/// path when the argument contains a `/`.
pub fn resolve(root: &Path, name_or_path: &str) -> Result<Backup, FolderError> {
    if name_or_path.contains('/') {
        let path = Path::new(name_or_path);
        if !exists(path)? {
            return Err(FolderError::NotFound {
                name: name_or_path.to_string(),
                root: path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf()),
            });
        }
        return Backup::open(path);
    }
    if name_or_path.is_empty() || name_or_path == "." || name_or_path == ".." {
        return Err(FolderError::InvalidName {
            name: name_or_path.to_string(),
            reason: "name a backup, not a directory",
        });
    }
    let candidates = [
        root.join(name_or_path),
        root.join(format!("{name_or_path}{PARTIAL_SUFFIX}")),
    ];
    for dir in &candidates {
        if exists(dir)? {
            return Backup::open(dir);
        }
    }
    Err(FolderError::NotFound {
        name: name_or_path.to_string(),
        root: root.to_path_buf(),
    })
}

/// Whether `path` exists (a symlink counts, unfollowed); any failure but "not found" (a
/// folder this user may not enter) is an error, never "no such backup".
fn exists(path: &Path) -> Result<bool, FolderError> {
    match path.symlink_metadata() {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("read", path)(err)),
    }
}

/// [`resolve`] for commands that only read (restore, diff, verify, show): given by path, what
/// is no backup is read as `kubectl apply -f` would read it (see [`open_for_reading`]).
pub fn resolve_for_reading(root: &Path, name_or_path: &str) -> Result<Backup, FolderError> {
    if !name_or_path.contains('/') {
        return resolve(root, name_or_path);
    }
    match resolve(root, name_or_path) {
        Err(FolderError::NotABackup { .. }) => open_for_reading(Path::new(name_or_path)),
        found => found,
    }
}

/// Opens `path`, which is no backup, as a source of objects the way `kubectl apply -f` takes
/// it: a folder of any name holding YAML files (flat, or one folder deep as backups are; other
/// files are passed over), or one file of any name. Such a source keeps no journal and is never
/// deleted; symbolic links are not followed.
pub fn open_for_reading(path: &Path) -> Result<Backup, FolderError> {
    let not_a_source = |reason: &str| FolderError::NotABackup {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = path.symlink_metadata().map_err(io_error("read", path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| not_a_source("it has no name"))?;
    let loose = if meta.file_type().is_symlink() {
        return Err(not_a_source("it is a symbolic link"));
    } else if meta.is_file() {
        Loose::File
    } else if meta.is_dir() {
        if scan_yaml_files(path)?.yaml_files.is_empty() {
            return Err(not_a_source(
                "it holds no YAML or JSON files (*.yaml, *.yml, *.json)",
            ));
        }
        Loose::Folder
    } else {
        return Err(not_a_source("it is neither a file nor a directory"));
    };
    Ok(Backup {
        name,
        dir: path.to_path_buf(),
        status: CatalogStatus::Unmanaged,
        manifest: None,
        loose: Some(loose),
        identities: Identities::default(),
    })
}

impl Backup {
    /// Recognises the directory `dir` as a backup, or says why it is not one.
    pub fn open(dir: &Path) -> Result<Backup, FolderError> {
        let not_a_backup = |reason: &str| FolderError::NotABackup {
            path: dir.to_path_buf(),
            reason: reason.to_string(),
        };
        let meta = dir.symlink_metadata().map_err(io_error("read", dir))?;
        if meta.file_type().is_symlink() {
            return Err(not_a_backup("it is a symbolic link"));
        }
        if !meta.is_dir() {
            return Err(not_a_backup("it is not a directory"));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| not_a_backup("it has no name"))?;
        if is_being_deleted(&name) {
            return Err(not_a_backup("it is being deleted"));
        }
        let is_partial = name.ends_with(PARTIAL_SUFFIX);
        let manifest_path = dir.join(MANIFEST_FILE);
        match manifest_path.symlink_metadata() {
            Ok(meta) if meta.is_file() => {
                let manifest = read_manifest(&manifest_path)?;
                let status = if is_partial || manifest.status == BackupStatus::Partial {
                    CatalogStatus::Partial
                } else {
                    CatalogStatus::Complete
                };
                return Ok(Backup {
                    name,
                    dir: dir.to_path_buf(),
                    status,
                    manifest: Some(manifest),
                    loose: None,
                    identities: Identities::default(),
                });
            }
            Ok(_) => return Err(not_a_backup("its manifest.json is not a regular file")),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            // Unreadable is not "no manifest": a folder another user wrote is no stranger.
            Err(err) => return Err(io_error("read", &manifest_path)(err)),
        }
        if !is_partial && !name.starts_with(NAME_PREFIX) {
            return Err(not_a_backup(
                "it has no manifest.json and its name does not start with lrs_backup_",
            ));
        }
        let layout = scan_yaml_files(dir)?;
        if let Some(stranger) = layout.strangers.first() {
            return Err(not_a_backup(&format!(
                "it has no manifest.json and holds `{stranger}`, which is not a YAML file"
            )));
        }
        if !is_partial && !layout.temp_files.is_empty() {
            return Err(not_a_backup(&format!(
                "it holds `{}`, which is not a YAML file",
                layout.temp_files[0]
            )));
        }
        if !is_partial && let Some(sealed) = layout.sealed_files.first() {
            return Err(not_a_backup(&format!(
                "it has no manifest.json and holds `{sealed}`, an encrypted file that only a \
                 manifest makes readable"
            )));
        }
        Ok(Backup {
            name,
            dir: dir.to_path_buf(),
            status: if is_partial {
                CatalogStatus::Partial
            } else {
                CatalogStatus::Unmanaged
            },
            manifest: None,
            loose: None,
            identities: Identities::default(),
        })
    }

    /// The same backup, opened with `identities` when it is encrypted.
    pub fn with_identities(self, identities: Identities) -> Backup {
        Backup { identities, ..self }
    }

    /// The public keys the items are encrypted to; `None` for an unencrypted backup.
    pub fn recipients(&self) -> Option<&[String]> {
        self.manifest.as_ref().and_then(Manifest::recipients)
    }

    /// When the backup was started: from the manifest, else from a default name, else the
    /// directory's modification time.
    pub fn created_at(&self) -> DateTime<Utc> {
        if let Some(manifest) = &self.manifest {
            return manifest.created_at;
        }
        time_from_name(&self.name)
            .or_else(|| {
                let modified = self.dir.symlink_metadata().ok()?.modified().ok()?;
                Some(DateTime::<Utc>::from(modified))
            })
            .unwrap_or_default()
    }

    /// The line `list` shows; cheap: unmanaged backups' files are counted, not read.
    pub fn summary(&self) -> Result<BackupSummary, FolderError> {
        let (lrs_count, counts_by_type) = match &self.manifest {
            Some(manifest) => (manifest.items.len(), manifest.counts_by_type.clone()),
            None => (
                scan_yaml_files(&self.dir)?.yaml_files.len(),
                BTreeMap::new(),
            ),
        };
        Ok(BackupSummary {
            name: self.name.clone(),
            path: self.dir.clone(),
            status: self.status,
            created_at: self.created_at(),
            cluster: self.manifest.as_ref().map(|m| m.cluster.clone()),
            lrs_count,
            counts_by_type,
            size_bytes: self.size_bytes()?,
        })
    }

    /// The total size of the files in the backup, in bytes.
    pub fn size_bytes(&self) -> Result<u64, FolderError> {
        match self.loose {
            Some(Loose::File) => Ok(self
                .dir
                .symlink_metadata()
                .map_err(io_error("read", &self.dir))?
                .len()),
            _ => tree_size(&self.dir),
        }
    }

    /// Whether the backup holds a file like [`DEPLOYMENTS_FILE`] or [`JOURNAL_FILE`].
    pub fn has_file(&self, file: &str) -> bool {
        self.loose.is_none()
            && self
                .dir
                .join(file)
                .symlink_metadata()
                .is_ok_and(|meta| meta.is_file())
    }

    /// Deletes the backup: recognised again right before (it must still be a backup), renamed
    /// to `<name>.deleting` so it stops looking like a backup at once, then removed without
    /// following symlinks. Returns the bytes freed.
    pub fn delete(self) -> Result<u64, FolderError> {
        if self.loose.is_some() {
            return Err(FolderError::NotABackup {
                path: self.dir,
                reason: "only backups are deleted".into(),
            });
        }
        let backup = Backup::open(&self.dir)?;
        let size = backup.size_bytes()?;
        let parent = backup.dir.parent().unwrap_or(Path::new("."));
        let mut attempt = 1;
        let doomed = loop {
            let suffix = if attempt == 1 {
                DELETING_SUFFIX.to_string()
            } else {
                format!("{DELETING_SUFFIX}_{attempt}")
            };
            let doomed = parent.join(format!("{}{suffix}", backup.name));
            // `rename` onto an existing non-empty directory fails; a leftover of an earlier,
            // interrupted delete keeps its name and we take the next one.
            match fs::rename(&backup.dir, &doomed) {
                Ok(()) => break doomed,
                Err(err)
                    if attempt < MAX_NAME_ATTEMPTS
                        && matches!(
                            err.kind(),
                            io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                        ) =>
                {
                    attempt += 1;
                }
                Err(err) => return Err(io_error("rename for deletion", &backup.dir)(err)),
            }
        };
        fs::remove_dir_all(&doomed).map_err(io_error("delete", &doomed))?;
        Ok(size)
    }
}

/// What [`Backup::delete`] left of the backup that was at `dir` when it was cut short: the
/// `<name>.deleting` folders beside it (an earlier interrupted delete's too).
pub fn delete_leftovers(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(Vec::new());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!("{}{DELETING_SUFFIX}", name.to_string_lossy());
    let mut found = Vec::new();
    for entry in fs::read_dir(parent).map_err(io_error("read", parent))? {
        let entry = entry.map_err(io_error("read", parent))?;
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if entry_name.starts_with(&prefix) && is_being_deleted(&entry_name) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

pub(super) fn read_manifest(path: &Path) -> Result<Manifest, FolderError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    let bad = |source| FolderError::BadManifest {
        path: path.to_path_buf(),
        source,
    };
    // Look at the version first: a newer format may not deserialise, and saying "newer" is
    // more useful than a missing-field error.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(bad)?;
    if let Some(version) = value.get("formatVersion").and_then(|v| v.as_u64())
        && version > u64::from(NEWEST_FORMAT_VERSION)
    {
        return Err(FolderError::NewerFormat {
            path: path.to_path_buf(),
            version,
        });
    }
    let manifest: Manifest = serde_json::from_value(value).map_err(bad)?;
    // The version is what keeps an older plugin from misreading an encrypted backup: the two
    // must agree, or an encrypted backup could pass for one such a plugin reads.
    let inconsistent = |reason| FolderError::InconsistentFormat {
        path: path.to_path_buf(),
        version: manifest.format_version,
        reason,
    };
    match (manifest.format_version, &manifest.encryption) {
        (FORMAT_VERSION, Some(_)) => Err(inconsistent(
            "is for unencrypted backups, yet the manifest has an encryption record",
        )),
        (ENCRYPTED_FORMAT_VERSION, None) => Err(inconsistent(
            "is for encrypted backups, yet the manifest has no encryption record",
        )),
        _ => Ok(manifest),
    }
}

/// What a backup directory without a manifest holds (paths relative to it, with `/`).
#[derive(Debug, Default)]
pub(super) struct YamlLayout {
    /// `*.yaml`/`*.yml`/`*.json` files, flat or one namespace folder deep.
    pub(super) yaml_files: Vec<String>,
    /// Temp files of the writer (only expected in a `.partial` backup).
    pub(super) temp_files: Vec<String>,
    /// Encrypted item files (`*.yaml.age`, one namespace folder deep): the items of an
    /// encrypted backup cut short before its manifest was written (only expected in a
    /// `.partial` backup; without the manifest they cannot be read).
    pub(super) sealed_files: Vec<String>,
    /// Anything else: symlinks, other files, deeper folders.
    pub(super) strangers: Vec<String>,
}

/// The names `kubectl apply -f FOLDER` reads: `.yaml`, `.yml` and `.json` (JSON is read as the
/// YAML it is, numbers exact alike).
pub(super) fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

pub(super) fn scan_yaml_files(dir: &Path) -> Result<YamlLayout, FolderError> {
    let mut layout = YamlLayout::default();
    for (path, file_type) in walk(dir, 2)? {
        let file_name = path.rsplit('/').next().unwrap_or(&path);
        let depth = path.matches('/').count() + 1;
        if file_type.is_dir() && depth == 1 {
            continue;
        }
        if !file_type.is_file() {
            layout.strangers.push(path);
        } else if is_temp_name(file_name) {
            layout.temp_files.push(path);
        } else if depth == 1 && [DEPLOYMENTS_FILE, JOURNAL_FILE, CRD_FILE].contains(&file_name) {
            // Written by `deployments deactivate --backup` (and prepare/recover) into any
            // backup, including the folders of the shell loop, and the definition a backup
            // saves before its items: not objects.
        } else if is_yaml_name(file_name) {
            layout.yaml_files.push(path);
        } else if depth == 2
            && file_name
                .strip_suffix(crate::encryption::FILE_SUFFIX)
                .is_some_and(is_yaml_name)
        {
            layout.sealed_files.push(path);
        } else {
            layout.strangers.push(path);
        }
    }
    Ok(layout)
}

/// Every entry under `dir` down to `max_depth` levels (1: direct children), as relative paths
/// with `/`, sorted, without following symlinks. Directories deeper than that are listed but
/// not entered.
pub(super) fn walk(
    dir: &Path,
    max_depth: usize,
) -> Result<Vec<(String, fs::FileType)>, FolderError> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new(), 1)];
    while let Some((path, prefix, depth)) = pending.pop() {
        for entry in fs::read_dir(&path).map_err(io_error("read", &path))? {
            let entry = entry.map_err(io_error("read", &path))?;
            let file_type = entry.file_type().map_err(io_error("read", &entry.path()))?;
            let relative = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if file_type.is_dir() && depth < max_depth {
                pending.push((entry.path(), format!("{relative}/"), depth + 1));
            }
            found.push((relative, file_type));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The size of all files under `dir` (not following symlinks).
fn tree_size(dir: &Path) -> Result<u64, FolderError> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in fs::read_dir(&path).map_err(io_error("read", &path))? {
            let entry = entry.map_err(io_error("read", &path))?;
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(io_error("read", &entry.path()))?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::testing::*;
    use crate::folder::*;
    use chrono::{Local, TimeZone, Utc};
    use std::fs;
    use std::path::{Path, PathBuf};

    /// An encrypted backup cut short before its manifest (killed, or an upload interrupted and
    /// mirrored back): partial, so that `list` shows it and `delete` removes it.
    #[test]
    fn a_partial_encrypted_backup_without_its_manifest_is_partial() {
        let root = tempfile::tempdir().unwrap();
        let partial = root.path().join(format!("nightly{PARTIAL_SUFFIX}"));
        fs::create_dir_all(partial.join("dr-app")).unwrap();
        fs::write(
            partial.join("dr-app/cm-1.yaml.age"),
            b"age-encryption.org/v1\n",
        )
        .unwrap();
        let backup = Backup::open(&partial).unwrap();
        assert_eq!(backup.status, CatalogStatus::Partial);
        assert!(backup.manifest.is_none());

        // Without `.partial`, encrypted files need a manifest to be anything.
        let loose = root.path().join("lrs_backup_2026_11_29_10_00");
        fs::create_dir_all(loose.join("dr-app")).unwrap();
        fs::write(
            loose.join("dr-app/cm-1.yaml.age"),
            b"age-encryption.org/v1\n",
        )
        .unwrap();
        let err = Backup::open(&loose).unwrap_err().to_string();
        assert!(err.contains("only a manifest makes readable"), "{err}");
    }

    /// A `.partial` folder of a chosen name killed before its manifest: as old as the folder
    /// (its last change), the same on every look, so that it ages and prune removes it.
    #[test]
    fn a_partial_folder_without_a_manifest_is_as_old_as_the_folder() {
        let root = tempfile::tempdir().unwrap();
        let partial = root.path().join(format!("intr1{PARTIAL_SUFFIX}"));
        fs::create_dir_all(partial.join("dr")).unwrap();
        fs::write(partial.join("dr/a.yaml"), lrs_yaml("dr", "a", "deployment")).unwrap();
        let written = Utc.with_ymd_and_hms(2026, 1, 10, 8, 30, 0).unwrap();
        fs::File::open(&partial)
            .unwrap()
            .set_modified(written.into())
            .unwrap();
        for _ in 0..2 {
            let listed = catalog(root.path()).unwrap();
            assert_eq!(listed.backups.len(), 1);
            assert_eq!(listed.backups[0].status, CatalogStatus::Partial);
            assert_eq!(listed.backups[0].created_at, written);
        }
    }

    #[test]
    fn any_folder_or_file_given_by_path_reads_as_kubectl_apply_reads_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("exported");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("list.yaml"), kubectl_list(&["a", "b"])).unwrap();
        let several = format!(
            "---\n{}---\n---\n{}",
            lrs_yaml("dr", "c", "deployment"),
            lrs_yaml("dr", "d", "spark_app")
        );
        fs::write(dir.join("several.yml"), several.replace('\n', "\r\n")).unwrap();
        fs::write(
            dir.join("bom.yaml"),
            format!("\u{feff}{}", lrs_yaml("dr", "e", "deployment")),
        )
        .unwrap();
        fs::write(
            dir.join("README.md"),
            "passed over, as kubectl passes it over",
        )
        .unwrap();

        // Not a backup: never listed, never deleted; but readable by path.
        assert!(matches!(
            Backup::open(&dir),
            Err(FolderError::NotABackup { .. })
        ));
        let dir_arg = dir.to_str().unwrap();
        let backup = resolve_for_reading(root.path(), dir_arg).unwrap();
        assert_eq!(backup.loose, Some(Loose::Folder));
        assert!(!backup.has_journal());
        let (objects, problems) = backup.read_objects().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let found: Vec<(String, String, &str)> = objects
            .iter()
            .map(|o| {
                (
                    o.place.locate(&o.path),
                    o.object.value["kind"].as_str().unwrap().to_string(),
                    o.object.value["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        let lrs = "LongRunningService".to_string();
        assert_eq!(
            found,
            [
                ("bom.yaml".into(), lrs.clone(), "e"),
                ("list.yaml (item 1)".into(), lrs.clone(), "a"),
                ("list.yaml (item 2)".into(), lrs.clone(), "b"),
                ("several.yml (document 1)".into(), lrs.clone(), "c"),
                ("several.yml (document 3)".into(), lrs, "d"),
            ]
        );
        assert_eq!(backup.verify().unwrap().checked, 3, "files, not objects");
        assert!(
            resolve_for_reading(root.path(), "exported").is_err(),
            "by name: no"
        );
        assert!(matches!(
            resolve_for_reading(root.path(), dir_arg).unwrap().delete(),
            Err(FolderError::NotABackup { .. })
        ));
        assert!(dir.join("list.yaml").exists());

        // One file.
        let file = dir.join("list.yaml");
        let single = resolve_for_reading(root.path(), file.to_str().unwrap()).unwrap();
        assert_eq!(single.loose, Some(Loose::File));
        assert_eq!(single.name, "list.yaml");
        assert_eq!(single.items().unwrap().len(), 2);
        assert_eq!(
            single.size_bytes().unwrap(),
            fs::metadata(&file).unwrap().len()
        );
        assert!(!single.has_file(DEPLOYMENTS_FILE));

        let empty = root.path().join("empty");
        fs::create_dir(&empty).unwrap();
        fs::write(empty.join("notes.txt"), "x").unwrap();
        let err = resolve_for_reading(root.path(), empty.to_str().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("it holds no YAML or JSON files"),
            "{err}"
        );
    }

    /// What the documented shell loop leaves: flat files, one empty where `kubectl get` failed.
    fn shell_loop_backup(root: &Path) -> PathBuf {
        let dir = root.join("lrs_backup_2025_11_20_09_30");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("a.yaml"), lrs_yaml("dr", "a", "deployment")).unwrap();
        fs::write(dir.join("b.yaml"), lrs_yaml("dr", "b", "deployment")).unwrap();
        dir
    }

    #[test]
    fn shell_loop_folders_are_unmanaged_backups() {
        let root = tempfile::tempdir().unwrap();
        let dir = shell_loop_backup(root.path());
        let backup = resolve(root.path(), "lrs_backup_2025_11_20_09_30").unwrap();
        assert_eq!(backup.status, CatalogStatus::Unmanaged);
        assert_eq!(
            backup.created_at(),
            Local
                .with_ymd_and_hms(2025, 11, 20, 9, 30, 0)
                .unwrap()
                .with_timezone(&Utc)
        );
        let items = backup.items().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].namespace.as_str(), items[0].r#type.as_str()),
            ("dr", "deployment")
        );
        assert!(backup.verify().unwrap().problems.is_empty());
        // The deployment snapshot written into it keeps it a backup, and is no item.
        fs::write(dir.join(DEPLOYMENTS_FILE), "{}").unwrap();
        let backup = resolve(root.path(), "lrs_backup_2025_11_20_09_30").unwrap();
        assert!(backup.has_file(DEPLOYMENTS_FILE));
        assert_eq!(backup.items().unwrap().len(), 2);
        assert!(backup.verify().unwrap().problems.is_empty());
        fs::write(dir.join("c.yaml"), "").unwrap();
        let problems = backup.verify().unwrap().problems;
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "c.yaml");
        assert_eq!(problems[0].detail, "the file is empty");
    }

    #[test]
    fn only_backups_are_listed() {
        let root = tempfile::tempdir().unwrap();
        finished_backup(root.path());
        shell_loop_backup(root.path());
        BackupWriter::create(root.path(), Some("running"), started()).unwrap();
        fs::create_dir(root.path().join("src")).unwrap();
        fs::write(root.path().join("notes.txt"), "x").unwrap();
        let mixed = root.path().join("lrs_backup_mixed");
        fs::create_dir(&mixed).unwrap();
        fs::write(mixed.join("photo.jpg"), "x").unwrap();
        let catalog = catalog(root.path()).unwrap();
        let listed: Vec<(&str, CatalogStatus)> = catalog
            .backups
            .iter()
            .map(|b| (b.name.as_str(), b.status))
            .collect();
        assert_eq!(
            listed,
            [
                ("running.partial", CatalogStatus::Partial),
                ("lrs_backup_2025_11_21_14_05", CatalogStatus::Complete),
                ("lrs_backup_2025_11_20_09_30", CatalogStatus::Unmanaged),
            ]
        );
        assert_eq!(catalog.unreadable.len(), 1);
        assert_eq!(catalog.unreadable[0].name, "lrs_backup_mixed");
        let complete = &catalog.backups[1];
        assert_eq!(complete.lrs_count, 3);
        assert_eq!(complete.size_bytes, tree_size(&complete.path).unwrap());
        assert!(complete.size_bytes > 0);
    }

    #[test]
    fn a_newer_format_is_named_as_such() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        fs::write(dir.join(MANIFEST_FILE), r#"{"formatVersion": 3}"#).unwrap();
        let err = Backup::open(&dir).unwrap_err();
        assert!(
            matches!(err, FolderError::NewerFormat { version: 3, .. }),
            "{err}"
        );
        assert!(
            err.to_string().ends_with("newer than this plugin's (2)"),
            "{err}"
        );
    }

    /// Version 2 is an encrypted backup and version 1 a plain one: a manifest that mixes them
    /// is refused, so an encrypted backup never passes for one an older plugin reads.
    #[test]
    fn the_format_version_says_whether_a_backup_is_encrypted() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        let path = dir.join(MANIFEST_FILE);
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        manifest["formatVersion"] = 2.into();
        fs::write(&path, manifest.to_string()).unwrap();
        let err = Backup::open(&dir).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("has format version 2, which is for encrypted backups, yet the manifest has no encryption record"),
            "{err}"
        );
        manifest["formatVersion"] = 1.into();
        manifest["encryption"] =
            serde_json::json!({"scheme": "age-encryption.org/v1", "recipients": ["age1x"]});
        fs::write(&path, manifest.to_string()).unwrap();
        let err = Backup::open(&dir).unwrap_err();
        assert!(
            matches!(err, FolderError::InconsistentFormat { version: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn delete_removes_backups_only() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        let backup = resolve(root.path(), "lrs_backup_2025_11_21_14_05").unwrap();
        assert!(backup.delete().unwrap() > 0);
        assert!(!dir.exists());
        assert!(names_in(root.path()).is_empty(), "no .deleting leftover");

        let precious = root.path().join("precious");
        fs::create_dir(&precious).unwrap();
        fs::write(precious.join("a.yaml"), "x").unwrap();
        let err = Backup::open(&precious).unwrap_err();
        assert!(matches!(err, FolderError::NotABackup { .. }), "{err}");
        let err = resolve(root.path(), "precious").unwrap_err();
        assert!(matches!(err, FolderError::NotABackup { .. }), "{err}");
        assert!(precious.join("a.yaml").exists());
    }

    #[test]
    fn an_interrupted_delete_is_reported_and_does_not_block_the_next() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        // A leftover of an earlier delete of a backup of the same name.
        let leftover = root.path().join("lrs_backup_2025_11_21_14_05.deleting");
        fs::create_dir(&leftover).unwrap();
        fs::write(leftover.join("half.yaml"), "x").unwrap();
        let listed = catalog(root.path()).unwrap();
        assert_eq!(listed.backups.len(), 1);
        assert_eq!(listed.unreadable.len(), 1);
        assert!(listed.unreadable[0].reason.contains("interrupted delete"));
        assert!(matches!(
            Backup::open(&leftover),
            Err(FolderError::NotABackup { .. })
        ));
        Backup::open(&dir).unwrap().delete().unwrap();
        assert_eq!(
            names_in(root.path()),
            ["lrs_backup_2025_11_21_14_05.deleting"]
        );
        assert!(is_being_deleted("a.deleting_12"));
        assert!(!is_being_deleted("a.deleting_x"));
    }

    /// What `delete` names after a Ctrl-C: the `.deleting` folders of that backup only.
    #[test]
    fn the_leftovers_of_a_delete_are_found_beside_the_backup() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        assert!(delete_leftovers(&dir).unwrap().is_empty());
        let name = dir.file_name().unwrap().to_str().unwrap();
        fs::create_dir(root.path().join(format!("{name}.deleting_2"))).unwrap();
        fs::create_dir(root.path().join(format!("{name}x.deleting"))).unwrap();
        fs::create_dir(root.path().join(format!("{name}.deleting_x"))).unwrap();
        assert_eq!(
            delete_leftovers(&dir).unwrap(),
            [root.path().join(format!("{name}.deleting_2"))]
        );
    }

    #[test]
    fn delete_never_follows_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(outside.path());
        let link = root.path().join("lrs_backup_link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = resolve(root.path(), "lrs_backup_link").unwrap_err();
        assert!(matches!(err, FolderError::NotABackup { .. }), "{err}");

        // A symlink inside an unmanaged-looking folder: not a backup, nothing is removed.
        let sneaky = root.path().join("lrs_backup_sneaky");
        fs::create_dir(&sneaky).unwrap();
        std::os::unix::fs::symlink(&dir, sneaky.join("x.yaml")).unwrap();
        assert!(Backup::open(&sneaky).is_err());

        // A symlink inside a managed backup is removed as a link; its target survives.
        let (mine, _) = finished_backup(root.path());
        std::os::unix::fs::symlink(&dir, mine.join("dr/link")).unwrap();
        Backup::open(&mine).unwrap().delete().unwrap();
        assert!(!mine.exists());
        assert!(dir.join("dr/a.yaml").exists());
    }

    #[test]
    fn not_found_hints_at_list() {
        let root = tempfile::tempdir().unwrap();
        let err = resolve(root.path(), "nope").unwrap_err();
        assert!(matches!(err, FolderError::NotFound { .. }));
        assert!(err.hint().unwrap().contains("kubectl mlbackup list --dir"));
    }
}
