//! The backup folder, format version 1 (DESIGN.md section 4), in one place: naming, the writer,
//! the reader and catalog, verification and safe deletion.
//!
//! What counts as a backup (the only directories this module ever lists or deletes):
//! - managed: a directory holding a `manifest.json` of this format (`<name>.partial` ones are
//!   unfinished: status partial, whatever the manifest says);
//! - a `<name>.partial` directory without a manifest (a backup that was killed before it could
//!   write one) holding only namespace folders of YAML files and the writer's temp files;
//! - unmanaged: a directory named `lrs_backup_*` without a manifest holding only YAML files, flat
//!   (the output of the documented shell loop) or in namespace folders.
//!
//! Symlinks are never followed: a symlinked backup directory, manifest or item is refused, and
//! items are opened component by component without following a symlink anywhere in their path
//! (a symlinked namespace folder included), so restore and diff read exactly what verify checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod records;

pub use records::ItemTotals;
use records::{ItemRecords, ItemRef};

/// The version of the folder layout and manifest written here.
pub const FORMAT_VERSION: u32 = 1;
/// Written last: its presence in a directory without `.partial` means the backup is complete.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Optional snapshot of deployment states (DESIGN.md section 6; format in
/// `mlbackup_helper::snapshot`, which the helper shares).
pub const DEPLOYMENTS_FILE: &str = mlbackup_helper::snapshot::SNAPSHOT_FILE;
/// Optional record of the steps of prepare/recover/restore, one JSON object per line.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// The prefix of default names, shared with the documented shell loop.
pub const NAME_PREFIX: &str = "lrs_backup_";
/// A backup being written, or one that was abandoned.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// A backup being deleted: renamed first so a half-deleted folder never looks like a backup.
const DELETING_SUFFIX: &str = ".deleting";
/// The label that carries the workload type of an LRS.
pub const TYPE_LABEL: &str = "datarobot-lrs-type";
/// `strftime` form of default names, like the runbook's `date "+%Y_%m_%d_%H_%M"`.
const NAME_TIME_FORMAT: &str = "%Y_%m_%d_%H_%M";
/// Enough for anyone starting backups in a loop within one minute; beyond that, something's wrong.
const MAX_NAME_ATTEMPTS: u32 = 1000;
const MAX_NAME_LEN: usize = 200;
const DIR_MODE: u32 = 0o700;
/// The longest item file name kept as `<name>.yaml`. File systems allow 255 bytes per name; the
/// rest is room for the writer's temp name around it (hidden prefix, random part, suffix).
/// Kubernetes allows object names of 253 characters, so longer ones are shortened.
const MAX_ITEM_FILE_NAME: usize = 200;
/// Hex digits of the SHA-256 of the full name in a shortened file name: 128 bits, so two names
/// with the same first characters never share a file, not even names made to (a collision of
/// 128 bits is out of reach).
const ITEM_NAME_HASH_LEN: usize = 32;

/// A failure to read, write or delete a backup folder, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("`{name}` is not a valid backup name: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("a backup named `{name}` already exists in {}", root.display())]
    AlreadyExists { name: String, root: PathBuf },

    #[error("no free backup name for `{base}` in {} after {MAX_NAME_ATTEMPTS} attempts", root.display())]
    NoFreeName { base: String, root: PathBuf },

    #[error(
        "`{namespace}/{name}` is not a valid Kubernetes namespace and object name; it is not \
         written as a file"
    )]
    InvalidItem { namespace: String, name: String },

    #[error("no backup named `{name}` in {}", root.display())]
    NotFound { name: String, root: PathBuf },

    #[error("the backup directory {} does not exist", root.display())]
    NoRoot { root: PathBuf },

    #[error("{} is not a backup: {reason}", path.display())]
    NotABackup { path: PathBuf, reason: String },

    #[error("cannot read the manifest {}", path.display())]
    BadManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{} has format version {version}, newer than this plugin's ({FORMAT_VERSION})", path.display())]
    NewerFormat { path: PathBuf, version: u64 },

    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FolderError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            FolderError::InvalidName { .. } => Some(
                "use letters, digits, `.`, `_` and `-` (not starting with `.` or `-`)".into(),
            ),
            FolderError::AlreadyExists { name, root } => Some(format!(
                "choose another --name, or remove the old one with `kubectl mlbackup delete {name} --dir {}`",
                root.display()
            )),
            FolderError::NotFound { root, .. } | FolderError::NoRoot { root } => Some(format!(
                "run `kubectl mlbackup list --dir {}` to see the backups there; set --dir or \
                 MLBACKUP_DIR to look elsewhere",
                root.display()
            )),
            FolderError::NotABackup { .. } => Some(
                "only folders written by `kubectl mlbackup backup` (with a manifest.json) or by the \
                 documented shell loop (lrs_backup_* holding YAML files) are managed"
                    .into(),
            ),
            FolderError::NewerFormat { .. } => {
                Some("use a newer kubectl-mlbackup to read this backup".into())
            }
            FolderError::NoFreeName { .. }
            | FolderError::InvalidItem { .. }
            | FolderError::BadManifest { .. }
            | FolderError::Io { .. } => None,
        }
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FolderError {
    let path = path.to_path_buf();
    move |source| FolderError::Io {
        action,
        path,
        source,
    }
}

/// The cluster a backup was taken from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    pub server: String,
    pub context: Option<String>,
}

/// The API resource the items are instances of, as discovery resolved it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
}

impl ResourceRef {
    /// The `apiVersion` of the objects, `<group>/<version>` (just `<version>` for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Whether the writer got to the end.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    Complete,
    Partial,
}

/// `manifest.json`: what was backed up, from where, and a checksum of every file. `I` is the
/// item list as read; the writer streams its records (`Listed`) and reports their
/// [`ItemTotals`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest<I = Vec<ManifestItem>> {
    pub format_version: u32,
    pub tool_version: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cluster: ClusterRef,
    pub resource: ResourceRef,
    pub selector: String,
    /// The namespaces asked for; empty means all namespaces.
    pub namespaces: Vec<String>,
    pub counts_by_type: BTreeMap<String, usize>,
    #[serde(default)]
    pub counts_by_namespace: BTreeMap<String, usize>,
    pub items: I,
    pub status: BackupStatus,
    #[serde(default)]
    pub errors: Vec<String>,
}

impl<I> Manifest<I> {
    /// The same manifest with another form of its item list.
    fn with_items<J>(self, items: J) -> Manifest<J> {
        Manifest {
            format_version: self.format_version,
            tool_version: self.tool_version,
            created_at: self.created_at,
            finished_at: self.finished_at,
            cluster: self.cluster,
            resource: self.resource,
            selector: self.selector,
            namespaces: self.namespaces,
            counts_by_type: self.counts_by_type,
            counts_by_namespace: self.counts_by_namespace,
            items,
            status: self.status,
            errors: self.errors,
        }
    }
}

/// One LRS file of a backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestItem {
    /// `<namespace>/<name>.yaml`, relative to the backup folder, always with `/`.
    pub path: String,
    pub namespace: String,
    pub name: String,
    /// The value of the `datarobot-lrs-type` label, `""` when unset.
    pub r#type: String,
    pub uid: String,
    pub resource_version: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub bytes: u64,
}

/// One LRS object read from a backup file.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Relative to the backup folder, with `/`.
    pub path: String,
    /// Where in the file: for files of several documents and Lists.
    pub place: Place,
    pub object: serde_json::Value,
}

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
    /// (temp file, rename; 0600; made durable by `finish`/`abandon`) and records it. Writing the
    /// same object again replaces the file and its record.
    pub fn write_item(
        &mut self,
        namespace: &str,
        name: &str,
        lrs_type: &str,
        uid: &str,
        resource_version: &str,
        yaml: &[u8],
    ) -> Result<(), FolderError> {
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
        // Not fsynced one by one: `make_durable` flushes them all at once before the folder
        // gets its final name (the mark of a complete backup).
        let path = namespace_dir.join(&file_name);
        mlbackup_helper::files::write_atomically_unsynced(&path, yaml)
            .map_err(io_error("write", &path))?;
        self.items.push(ItemRef {
            path: &format!("{namespace}/{file_name}"),
            namespace,
            name,
            r#type: lrs_type,
            uid,
            resource_version,
            sha256: Sha256::digest(yaml).into(),
            bytes: yaml.len() as u64,
        });
        Ok(())
    }

    /// How many objects were written so far.
    pub fn written(&self) -> usize {
        self.items.len()
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
        sync_dir(&self.root);
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
        let started = std::time::Instant::now();
        let dir = File::open(&self.dir).map_err(io_error("open", &self.dir))?;
        rustix::fs::syncfs(&dir)
            .map_err(|errno| io_error("flush to disk", &self.dir)(errno.into()))?;
        log::debug!(
            "flushed the file system of {} in {} ms",
            self.dir.display(),
            started.elapsed().as_millis()
        );
        Ok(())
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
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: info.created_at,
            finished_at: Some(Utc::now()),
            cluster: info.cluster,
            resource: info.resource,
            selector: info.selector,
            namespaces: info.namespaces,
            counts_by_type: items.counts_by_type(),
            counts_by_namespace: items.counts_by_namespace(),
            items,
            status,
            errors,
        };
        write_manifest(&self.dir, &manifest)?;
        Ok(manifest.with_items(totals))
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

/// `lrs_backup_YYYY_MM_DD_HH_MM`, in local time like the runbook's `date`.
pub fn default_name(started: DateTime<Local>) -> String {
    format!("{NAME_PREFIX}{}", started.format(NAME_TIME_FORMAT))
}

/// The time a default name stands for (`lrs_backup_2026_11_21_14_05`, with or without a `_N`
/// or `.partial` suffix), read as local time.
fn time_from_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(NAME_PREFIX)?.get(..16)?;
    let naive = NaiveDateTime::parse_from_str(&format!("{stamp}_00"), "%Y_%m_%d_%H_%M_%S").ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Checks a name given with `--name`: one plain path component that cannot be mistaken for a
/// partial or half-deleted backup, an option, or a hidden file.
pub fn validate_name(name: &str) -> Result<(), FolderError> {
    let invalid = |reason| {
        Err(FolderError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("it is longer than 200 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only letters, digits, `.`, `_` and `-` are allowed");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return invalid("it must not start with `.` or `-`");
    }
    if name.ends_with(PARTIAL_SUFFIX) || is_being_deleted(name) {
        return invalid("names ending in `.partial` or `.deleting` are reserved");
    }
    Ok(())
}

/// `<name>.deleting` or `<name>.deleting_N`: the names [`Backup::delete`] renames to.
fn is_being_deleted(name: &str) -> bool {
    name.rsplit_once(DELETING_SUFFIX).is_some_and(|(_, rest)| {
        rest.is_empty()
            || rest
                .strip_prefix('_')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
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

/// The file an object is stored in within its namespace folder: `<name>.yaml` while that is
/// at most [`MAX_ITEM_FILE_NAME`] bytes, else the name's first characters, `_` and a short
/// SHA-256 of the whole name (`_` is not allowed in Kubernetes names, so a shortened name never
/// equals a kept one). Readers take names from the manifest or the file, never from this.
pub fn item_file_name(name: &str) -> String {
    const SUFFIX: &str = ".yaml";
    if name.len() + SUFFIX.len() <= MAX_ITEM_FILE_NAME {
        return format!("{name}{SUFFIX}");
    }
    let mut keep = MAX_ITEM_FILE_NAME - SUFFIX.len() - 1 - ITEM_NAME_HASH_LEN;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let hash = sha256_hex(name.as_bytes());
    format!("{}_{}{SUFFIX}", &name[..keep], &hash[..ITEM_NAME_HASH_LEN])
}

/// A namespace or object name that is safe as one path component. Kubernetes names are DNS
/// labels or subdomains, so this refuses nothing the API server accepts.
fn is_safe_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 253
        && !part.starts_with('.')
        && !part.contains(['/', '\\', '\0'])
}

fn create_private_dir(dir: &Path) -> Result<(), FolderError> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_error("create the directory", dir)(err))
        }
        _ => Ok(()),
    }
}

use mlbackup_helper::files::{is_temp_name, sync_dir};

/// Writes the manifest so that readers see either none or the whole of it (temp file, rename),
/// streamed: the item list of a large backup is never whole in memory. Not flushed: the
/// writer flushes the whole folder next.
fn write_manifest(dir: &Path, manifest: &impl Serialize) -> Result<(), FolderError> {
    let path = dir.join(MANIFEST_FILE);
    mlbackup_helper::files::write_atomically_unsynced_with(&path, |out| {
        serde_json::to_writer_pretty(&mut *out, manifest)?;
        out.write_all(b"\n")
    })
    .map_err(io_error("write", &path))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex, as `sha256sum` prints a digest.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

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
}

/// A source of objects that is no backup, read as `kubectl apply -f` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loose {
    /// A folder of any name: its YAML files, flat or one folder deep; other files passed over.
    Folder,
    /// One file (of any name); [`Backup::dir`] is the file itself.
    File,
}

/// One line of [`JOURNAL_FILE`] for a step of `prepare` or `recover`: a `started` record when
/// the step begins (so a step that was started and never finished is known), then a `finished`
/// record with its result, counts and errors. Appended with [`Backup::append_journal`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// `prepare` or `recover`.
    pub runbook: String,
    pub step: String,
    pub event: StepEvent,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// For `finished`: `done`, `skipped`, `failed` or `interrupted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    pub tool_version: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StepEvent {
    Started,
    Finished,
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
            Err(FolderError::NotABackup { .. })
                if !name.starts_with(NAME_PREFIX) && !dir.join(MANIFEST_FILE).exists() => {}
            Err(err) => unreadable.push(Unreadable {
                name,
                reason: error_chain(&err),
            }),
        }
    }
    backups.sort_by(|a, b| (b.created_at, &b.name).cmp(&(a.created_at, &a.name)));
    unreadable.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Catalog {
        backups,
        unreadable,
    })
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Finds a backup by name under `root` (also `<name>.partial` when only that exists), or by
/// path when the argument contains a `/`.
pub fn resolve(root: &Path, name_or_path: &str) -> Result<Backup, FolderError> {
    if name_or_path.contains('/') {
        let path = Path::new(name_or_path);
        if path.symlink_metadata().is_err() {
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
    match candidates.iter().find(|dir| dir.symlink_metadata().is_ok()) {
        Some(dir) => Backup::open(dir),
        None => Err(FolderError::NotFound {
            name: name_or_path.to_string(),
            root: root.to_path_buf(),
        }),
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
                });
            }
            Ok(_) => return Err(not_a_backup("its manifest.json is not a regular file")),
            Err(_) => {}
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
        })
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

    /// Reads every LRS file for a restore, checked as [`Backup::verify`] checks it (for a
    /// managed backup: listed, intact, of the recorded apiVersion and kind, named like its
    /// path; otherwise: a YAML object with apiVersion, kind and metadata.name). Returns the
    /// objects and a problem for each file that is not good, sorted by path.
    pub fn read_objects(&self) -> Result<(Vec<StoredObject>, Vec<Problem>), FolderError> {
        let mut objects = Vec::new();
        let mut problems = Vec::new();
        match &self.manifest {
            Some(manifest) => {
                for item in &manifest.items {
                    match check_item(&self.dir, &manifest.resource, item) {
                        Ok(object) => objects.push(StoredObject {
                            path: item.path.clone(),
                            place: Place::default(),
                            object,
                        }),
                        Err(problem) => problems.push(problem),
                    }
                }
            }
            None => {
                let (read, bad) = self.read_yaml_objects()?;
                objects.extend(read.into_iter().map(|(item, place, object)| StoredObject {
                    path: item.path,
                    place,
                    object,
                }));
                problems.extend(bad);
            }
        }
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((objects, problems))
    }

    /// Whether steps may be recorded in [`JOURNAL_FILE`]: only in managed backups, because a
    /// folder without a manifest is recognised by holding nothing but YAML files.
    pub fn has_journal(&self) -> bool {
        self.manifest.is_some()
    }

    /// Appends one record to [`JOURNAL_FILE`] as one JSON line, in one `write` on a file
    /// opened for appending (0600), then fsync: concurrent writers never interleave within a
    /// line and a crash never leaves half a record followed by another.
    pub fn append_journal<T: Serialize>(&self, record: &T) -> Result<PathBuf, FolderError> {
        let path = self.dir.join(JOURNAL_FILE);
        if !self.has_journal() {
            return Err(FolderError::NotABackup {
                path: self.dir.clone(),
                reason: "only backups with a manifest.json keep a journal".into(),
            });
        }
        // Never append through a symlink planted in the backup.
        if path
            .symlink_metadata()
            .is_ok_and(|meta| !meta.file_type().is_file())
        {
            return Err(FolderError::NotABackup {
                path: self.dir.clone(),
                reason: format!("its {JOURNAL_FILE} is not a regular file"),
            });
        }
        let result = (|| {
            let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
            line.push(b'\n');
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(mlbackup_helper::files::FILE_MODE)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&path)?;
            file.write_all(&line)?;
            file.sync_all()
        })();
        result.map_err(io_error("append to", &path))?;
        Ok(path)
    }

    /// The step records of `runbook` (`prepare`, `recover`) in [`JOURNAL_FILE`], oldest first.
    /// Lines of other kinds (a `restore` run's) are not step records and are passed over, and
    /// so is a last line torn by a crash.
    pub fn step_records(&self, runbook: &str) -> Result<Vec<StepRecord>, FolderError> {
        let path = self.dir.join(JOURNAL_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_error("read", &path)(err)),
        };
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<StepRecord>(line).ok())
            .filter(|record| record.runbook == runbook)
            .collect())
    }

    /// The LRS files: the manifest's items, or for a backup without a manifest what reading its
    /// YAML files tells (unreadable files are left out; [`Backup::verify`] names them).
    pub fn items(&self) -> Result<Vec<ManifestItem>, FolderError> {
        match &self.manifest {
            Some(manifest) => Ok(manifest.items.clone()),
            None => Ok(self.read_yaml_files()?.0),
        }
    }

    /// Checks every file: for managed backups each item is present with the recorded size and
    /// SHA-256, parses as an object of the recorded apiVersion and kind, and is named like its
    /// path, and nothing else is there; for the others every YAML file parses as an object with
    /// apiVersion, kind and metadata.name.
    pub fn verify(&self) -> Result<Verification, FolderError> {
        let mut problems = Vec::new();
        let checked = match &self.manifest {
            Some(manifest) => {
                if manifest.status == BackupStatus::Partial || self.status == CatalogStatus::Partial
                {
                    problems.push(Problem {
                        path: MANIFEST_FILE.to_string(),
                        kind: ProblemKind::Incomplete,
                        detail: incomplete_detail(manifest),
                    });
                }
                for item in &manifest.items {
                    if let Err(problem) = check_item(&self.dir, &manifest.resource, item) {
                        problems.push(problem);
                    }
                }
                problems.extend(self.unexpected_files(manifest)?);
                manifest.items.len()
            }
            None => {
                let (items, bad) = self.read_yaml_files()?;
                if self.status == CatalogStatus::Partial {
                    problems.push(Problem {
                        path: MANIFEST_FILE.to_string(),
                        kind: ProblemKind::Missing,
                        detail: "the backup was interrupted before it wrote its manifest".into(),
                    });
                }
                // Files, not objects: a file may hold several (documents, Lists).
                let checked = items
                    .iter()
                    .map(|item| &item.path)
                    .chain(bad.iter().map(|problem| &problem.path))
                    .collect::<BTreeSet<_>>()
                    .len();
                problems.extend(bad);
                checked
            }
        };
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Verification { checked, problems })
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

    fn unexpected_files(&self, manifest: &Manifest) -> Result<Vec<Problem>, FolderError> {
        let mut expected: BTreeSet<&str> = manifest.items.iter().map(|i| i.path.as_str()).collect();
        expected.extend([MANIFEST_FILE, DEPLOYMENTS_FILE, JOURNAL_FILE]);
        let namespaces: BTreeSet<&str> = manifest
            .items
            .iter()
            .map(|i| i.namespace.as_str())
            .collect();
        let mut problems = Vec::new();
        for (path, file_type) in walk(&self.dir, 2)? {
            let unexpected = if file_type.is_dir() {
                !namespaces.contains(path.as_str())
            } else {
                !expected.contains(path.as_str())
            };
            if unexpected {
                let what = if file_type.is_symlink() {
                    "a symbolic link the manifest does not list"
                } else if file_type.is_dir() {
                    "a directory the manifest does not list"
                } else {
                    "a file the manifest does not list"
                };
                problems.push(Problem {
                    path,
                    kind: ProblemKind::Unexpected,
                    detail: what.to_string(),
                });
            }
        }
        Ok(problems)
    }

    /// Reads every YAML file of a backup without a manifest: the items it could read, and a
    /// problem for each file it could not.
    fn read_yaml_files(&self) -> Result<(Vec<ManifestItem>, Vec<Problem>), FolderError> {
        let (objects, problems) = self.read_yaml_objects()?;
        Ok((
            objects.into_iter().map(|(item, _, _)| item).collect(),
            problems,
        ))
    }

    /// [`Backup::read_yaml_files`] with the objects read, and where each is in its file.
    #[allow(clippy::type_complexity)]
    fn read_yaml_objects(
        &self,
    ) -> Result<(Vec<(ManifestItem, Place, serde_json::Value)>, Vec<Problem>), FolderError> {
        let mut problems = Vec::new();
        // (path shown, folder, path under it): read beneath the folder, never through a link.
        let files: Vec<(String, PathBuf, String)> = match self.loose {
            Some(Loose::File) => {
                let parent = match self.dir.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                vec![(self.name.clone(), parent, self.name.clone())]
            }
            _ => {
                let layout = scan_yaml_files(&self.dir)?;
                // In a folder of any name other files are passed over, as kubectl passes them
                // over; a YAML name that is no regular file is not, because it is meant.
                problems.extend(
                    layout
                        .strangers
                        .into_iter()
                        .filter(|path| is_yaml_name(path))
                        .map(|path| Problem {
                            path,
                            kind: ProblemKind::Unreadable,
                            detail: "not a regular file (symbolic links are not followed)".into(),
                        }),
                );
                layout
                    .yaml_files
                    .into_iter()
                    .map(|path| (path.clone(), self.dir.clone(), path))
                    .collect()
            }
        };
        let mut items = Vec::new();
        for (path, dir, relative) in files {
            let bytes = match read_beneath(&dir, &relative) {
                Ok(bytes) => bytes,
                Err(err) => {
                    problems.push(Problem {
                        path,
                        kind: ProblemKind::Unreadable,
                        detail: err.to_string(),
                    });
                    continue;
                }
            };
            let objects = match read_file_objects(&bytes) {
                Ok(objects) => objects,
                Err(detail) => {
                    problems.push(Problem {
                        path,
                        kind: ProblemKind::Invalid,
                        detail,
                    });
                    continue;
                }
            };
            let sha256 = sha256_hex(&bytes);
            for object in objects {
                match object {
                    Ok(FileObject { place, value, head }) => items.push((
                        ManifestItem {
                            path: path.clone(),
                            namespace: head.namespace.unwrap_or_default(),
                            name: head.name,
                            r#type: head.lrs_type,
                            uid: head.uid,
                            resource_version: head.resource_version,
                            sha256: sha256.clone(),
                            bytes: bytes.len() as u64,
                        },
                        place,
                        value,
                    )),
                    Err(detail) => problems.push(Problem {
                        path: path.clone(),
                        kind: ProblemKind::Invalid,
                        detail,
                    }),
                }
            }
        }
        Ok((items, problems))
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, FolderError> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    let bad = |source| FolderError::BadManifest {
        path: path.to_path_buf(),
        source,
    };
    // Look at the version first: a newer format may not deserialise, and saying "newer" is
    // more useful than a missing-field error.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(bad)?;
    if let Some(version) = value.get("formatVersion").and_then(|v| v.as_u64())
        && version > u64::from(FORMAT_VERSION)
    {
        return Err(FolderError::NewerFormat {
            path: path.to_path_buf(),
            version,
        });
    }
    serde_json::from_value(value).map_err(bad)
}

fn incomplete_detail(manifest: &Manifest) -> String {
    if manifest.errors.is_empty() {
        "the backup did not finish".to_string()
    } else {
        format!("the backup did not finish: {}", manifest.errors.join("; "))
    }
}

/// What is wrong with one file of a backup.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// Listed in the manifest, not on disk.
    Missing,
    /// Size or SHA-256 differs from the manifest.
    Modified,
    /// Not YAML, not an object of the recorded kind, or named unlike its path.
    Invalid,
    /// Cannot be read (permissions, not a regular file).
    Unreadable,
    /// On disk, not in the manifest.
    Unexpected,
    /// The backup itself did not finish.
    Incomplete,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Missing => "missing",
            ProblemKind::Modified => "modified",
            ProblemKind::Invalid => "invalid",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::Unexpected => "unexpected",
            ProblemKind::Incomplete => "incomplete",
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Relative to the backup folder.
    pub path: String,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// How many LRS files were checked.
    pub checked: usize,
    /// Sorted by path; empty when the backup is good.
    pub problems: Vec<Problem>,
}

/// Checks one item of a manifest and returns the object its file holds.
fn check_item(
    dir: &Path,
    resource: &ResourceRef,
    item: &ManifestItem,
) -> Result<serde_json::Value, Problem> {
    let problem = |kind, detail: String| {
        Err(Problem {
            path: item.path.clone(),
            kind,
            detail,
        })
    };
    // A manifest is data from disk: never let its paths point outside the backup.
    let expected_path = format!("{}/{}", item.namespace, item_file_name(&item.name));
    if !is_safe_component(&item.namespace)
        || !is_safe_component(&item.name)
        || item.path != expected_path
    {
        return problem(
            ProblemKind::Invalid,
            format!(
                "the manifest lists it for `{}/{}`, whose file would be `{expected_path}`",
                item.namespace, item.name
            ),
        );
    }
    let bytes = match read_beneath(dir, &item.path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return problem(
                ProblemKind::Missing,
                "listed in the manifest, not on disk".into(),
            );
        }
        Err(err) => return problem(ProblemKind::Unreadable, err.to_string()),
    };
    let sha256 = sha256_hex(&bytes);
    if bytes.len() as u64 != item.bytes || sha256 != item.sha256 {
        return problem(
            ProblemKind::Modified,
            format!(
                "{} bytes with SHA-256 {}, the manifest says {} bytes with SHA-256 {}",
                bytes.len(),
                short_hash(&sha256),
                item.bytes,
                short_hash(&item.sha256)
            ),
        );
    }
    let (value, object) = match read_single_object(&bytes) {
        Ok(read) => read,
        Err(detail) => return problem(ProblemKind::Invalid, detail),
    };
    let mismatches: Vec<String> = [
        (
            "apiVersion",
            object.api_version.clone(),
            resource.api_version(),
        ),
        ("kind", object.kind.clone(), resource.kind.clone()),
        ("metadata.name", object.name.clone(), item.name.clone()),
        (
            "metadata.namespace",
            object.namespace.clone().unwrap_or_default(),
            item.namespace.clone(),
        ),
    ]
    .into_iter()
    .filter(|(_, found, expected)| found != expected)
    .map(|(field, found, expected)| format!("{field} is `{found}`, expected `{expected}`"))
    .collect();
    if mismatches.is_empty() {
        Ok(value)
    } else {
        problem(ProblemKind::Invalid, mismatches.join("; "))
    }
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The fields of a Kubernetes object this module looks at.
struct ObjectHead {
    api_version: String,
    kind: String,
    name: String,
    namespace: Option<String>,
    uid: String,
    resource_version: String,
    lrs_type: String,
}

/// Where an object is in its file: which `---` document (named only when the file has more
/// than one) and which item of a `kind: List`. Empty for a file that is one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// 1-based.
    pub document: Option<usize>,
    /// 1-based.
    pub item: Option<usize>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.document, self.item) {
            (Some(document), Some(item)) => write!(f, "document {document}, item {item}"),
            (Some(document), None) => write!(f, "document {document}"),
            (None, Some(item)) => write!(f, "item {item}"),
            (None, None) => Ok(()),
        }
    }
}

impl Place {
    /// `path`, with the place in parentheses when there is one: `all.yaml (document 2)`.
    pub fn locate(self, path: &str) -> String {
        if self == Place::default() {
            path.to_string()
        } else {
            format!("{path} ({self})")
        }
    }

    /// `detail` prefixed with the place, when there is one.
    pub fn describe(self, detail: &str) -> String {
        if self == Place::default() {
            detail.to_string()
        } else {
            format!("{self}: {detail}")
        }
    }
}

/// One object of a file.
struct FileObject {
    place: Place,
    value: serde_json::Value,
    head: ObjectHead,
}

/// Reads every object of a file as `kubectl apply -f` would (see [`crate::yaml::read_documents`]):
/// each document, and the items of each List (a document with `items`; items without `kind`
/// and `apiVersion` take the List's, without its `List` suffix). `Err`: the file cannot be read
/// at all; otherwise one result per object, an `Err` saying (with its place) why that document
/// or item is no Kubernetes object.
fn read_file_objects(bytes: &[u8]) -> Result<Vec<Result<FileObject, String>>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // What the shell loop leaves behind when `kubectl get` failed.
        return Err("the file is empty".to_string());
    }
    let documents = crate::yaml::read_documents(bytes).map_err(|err| {
        let place = Place {
            document: (err.index > 1).then_some(err.index),
            item: None,
        };
        place.describe(&format!("not valid YAML: {}", err.reason))
    })?;
    if documents.is_empty() {
        return Err("the file holds no object (only empty documents)".to_string());
    }
    let several = documents.len() > 1 || documents[0].index > 1;
    let mut objects = Vec::new();
    for document in documents {
        let place = Place {
            document: several.then_some(document.index),
            item: None,
        };
        let value = document.value;
        let Some(items) = value.get("items") else {
            objects.push(
                object_head(&value)
                    .map(|head| FileObject { place, value, head })
                    .map_err(|detail| place.describe(&detail)),
            );
            continue;
        };
        // kubectl's rule: any object with `items` is a list.
        let items = match items {
            serde_json::Value::Array(items) => items.clone(),
            serde_json::Value::Null => Vec::new(),
            _ => {
                objects.push(Err(place.describe("`items` is not a list")));
                continue;
            }
        };
        let text = |field: &str| value[field].as_str().unwrap_or_default().to_string();
        let (list_version, list_kind) = (text("apiVersion"), text("kind"));
        let item_kind = list_kind.strip_suffix("List").unwrap_or(&list_kind);
        for (position, mut item) in items.into_iter().enumerate() {
            let place = Place {
                item: Some(position + 1),
                ..place
            };
            if let Some(map) = item.as_object_mut()
                && !map.contains_key("kind")
                && !map.contains_key("apiVersion")
            {
                map.insert("apiVersion".into(), list_version.clone().into());
                map.insert("kind".into(), item_kind.into());
            }
            let read = if item.get("items").is_some() {
                Err("a list inside a list".to_string())
            } else {
                object_head(&item)
            };
            objects.push(
                read.map(|head| FileObject {
                    place,
                    value: item,
                    head,
                })
                .map_err(|detail| place.describe(&detail)),
            );
        }
    }
    Ok(objects)
}

/// Reads a file that must hold exactly one object (an item of a managed backup).
fn read_single_object(bytes: &[u8]) -> Result<(serde_json::Value, ObjectHead), String> {
    let mut objects = read_file_objects(bytes)?;
    if objects.len() != 1 {
        return Err(format!(
            "it holds {} objects; a backup file holds one",
            objects.len()
        ));
    }
    if objects[0]
        .as_ref()
        .is_ok_and(|o| o.place != Place::default())
    {
        return Err("it holds a List; a backup file holds one object".to_string());
    }
    objects
        .pop()
        .expect("one object")
        .map(|object| (object.value, object.head))
}

/// The fields this module looks at of one document, or what is missing for it to be a
/// Kubernetes object.
fn object_head(value: &serde_json::Value) -> Result<ObjectHead, String> {
    if !value.is_object() {
        return Err("not a YAML object".to_string());
    }
    let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
    let field = |name: &str| {
        text(&value[name])
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("`{name}` is missing"))
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let metadata = &value["metadata"];
    let name = text(&metadata["name"])
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("`metadata.name` of the {kind} is missing"))?;
    Ok(ObjectHead {
        api_version,
        kind,
        name,
        namespace: text(&metadata["namespace"]),
        uid: text(&metadata["uid"]).unwrap_or_default(),
        resource_version: text(&metadata["resourceVersion"]).unwrap_or_default(),
        lrs_type: text(&metadata["labels"][TYPE_LABEL]).unwrap_or_default(),
    })
}

/// What a backup directory without a manifest holds (paths relative to it, with `/`).
#[derive(Debug, Default)]
struct YamlLayout {
    /// `*.yaml`/`*.yml`/`*.json` files, flat or one namespace folder deep.
    yaml_files: Vec<String>,
    /// Temp files of the writer (only expected in a `.partial` backup).
    temp_files: Vec<String>,
    /// Anything else: symlinks, other files, deeper folders.
    strangers: Vec<String>,
}

/// The names `kubectl apply -f FOLDER` reads: `.yaml`, `.yml` and `.json` (JSON is read as the
/// YAML it is, numbers exact alike).
fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

fn scan_yaml_files(dir: &Path) -> Result<YamlLayout, FolderError> {
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
        } else if depth == 1 && [DEPLOYMENTS_FILE, JOURNAL_FILE].contains(&file_name) {
            // Written by `deployments deactivate --backup` (and prepare/recover) into any
            // backup, including the folders of the shell loop: not objects.
        } else if is_yaml_name(file_name) {
            layout.yaml_files.push(path);
        } else {
            layout.strangers.push(path);
        }
    }
    Ok(layout)
}

/// Every entry under `dir` down to `max_depth` levels (1: direct children), as relative paths
/// with `/`, sorted, without following symlinks. Directories deeper than that are listed but
/// not entered.
fn walk(dir: &Path, max_depth: usize) -> Result<Vec<(String, fs::FileType)>, FolderError> {
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

/// Reads the regular file `relative` (components separated by `/`) under `dir`, opening each
/// component with `O_NOFOLLOW`: a symlink anywhere in the path (a namespace folder pointing
/// elsewhere, say) fails the read instead of leading out of the backup. Opened non-blocking and
/// checked to be a regular file, so a FIFO or device planted there cannot hang or feed it.
fn read_beneath(dir: &Path, relative: &str) -> io::Result<Vec<u8>> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, openat, statat};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut current = rustix::fs::open(dir, flags | OFlags::DIRECTORY, Mode::empty())?;
    let mut parts = relative.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let kind = if last {
            OFlags::NONBLOCK
        } else {
            OFlags::DIRECTORY
        };
        let opened = openat(&current, part, flags | kind, Mode::empty()).map_err(|errno| {
            // ELOOP or ENOTDIR, depending on the flags: say what it is.
            match statat(&current, part, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                    io::Error::other("a symbolic link is in its path (not followed)")
                }
                _ => io::Error::from(errno),
            }
        })?;
        if !last {
            current = opened;
            continue;
        }
        let mut file = File::from(opened);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    Err(io::Error::from(io::ErrorKind::InvalidInput))
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
    use std::os::unix::fs::PermissionsExt;

    fn started() -> DateTime<Local> {
        Local.with_ymd_and_hms(2025, 11, 21, 14, 5, 30).unwrap()
    }

    fn info() -> BackupInfo {
        BackupInfo {
            created_at: started().with_timezone(&Utc),
            cluster: ClusterRef {
                server: "https://127.0.0.1:6443".into(),
                context: Some("sandbox".into()),
            },
            resource: ResourceRef {
                group: "lrs.datarobot.com".into(),
                version: "v1".into(),
                kind: "LongRunningService".into(),
                plural: "lrs".into(),
            },
            selector: "datarobot-lrs-type=deployment".into(),
            namespaces: vec![],
        }
    }

    fn lrs_yaml(namespace: &str, name: &str, lrs_type: &str) -> String {
        format!(
            "apiVersion: lrs.datarobot.com/v1\nkind: LongRunningService\nmetadata:\n  name: {name}\n  \
             namespace: {namespace}\n  uid: uid-{name}\n  resourceVersion: \"7\"\n  labels:\n    \
             datarobot-lrs-type: {lrs_type}\nspec:\n  image: x\n"
        )
    }

    /// A finished backup of three LRSes in two namespaces, and its manifest as read back.
    fn finished_backup(root: &Path) -> (PathBuf, Manifest) {
        let mut writer = BackupWriter::create(root, None, started()).unwrap();
        for (namespace, name, lrs_type) in [
            ("dr", "a", "deployment"),
            ("dr", "b", "spark_app"),
            ("team", "c", "deployment"),
        ] {
            let yaml = lrs_yaml(namespace, name, lrs_type);
            writer
                .write_item(
                    namespace,
                    name,
                    lrs_type,
                    &format!("uid-{name}"),
                    "7",
                    yaml.as_bytes(),
                )
                .unwrap();
        }
        let (dir, written) = writer.finish(info()).unwrap();
        let manifest = read_manifest(&dir.join(MANIFEST_FILE)).unwrap();
        // What the writer reports is what it wrote.
        let totals = ItemTotals {
            count: manifest.items.len(),
            bytes: manifest.items.iter().map(|i| i.bytes).sum(),
        };
        assert_eq!(written, manifest.clone().with_items(totals));
        (dir, manifest)
    }

    fn mode(path: &Path) -> u32 {
        path.metadata().unwrap().permissions().mode() & 0o777
    }

    fn names_in(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

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
    fn items_behind_a_symlink_are_refused_like_verify_refuses_them() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        // The namespace folder moved elsewhere and linked back: same bytes, other place.
        let elsewhere = root.path().join("elsewhere");
        fs::rename(dir.join("dr"), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("dr")).unwrap();
        let backup = Backup::open(&dir).unwrap();
        let (objects, problems) = backup.read_objects().unwrap();
        assert_eq!(objects.len(), 1, "only team/c.yaml is read");
        let found: Vec<(&str, ProblemKind, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.kind, p.detail.as_str()))
            .collect();
        let behind = "a symbolic link is in its path (not followed)";
        assert_eq!(
            found,
            [
                ("dr/a.yaml", ProblemKind::Unreadable, behind),
                ("dr/b.yaml", ProblemKind::Unreadable, behind),
            ]
        );
        let verified = backup.verify().unwrap().problems;
        let kinds: Vec<(&str, ProblemKind)> =
            verified.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("dr", ProblemKind::Unexpected),
                ("dr/a.yaml", ProblemKind::Unreadable),
                ("dr/b.yaml", ProblemKind::Unreadable),
            ]
        );
        // A symlinked item file, and a FIFO in its place, are refused too (and never block).
        fs::remove_file(dir.join("dr")).unwrap();
        fs::create_dir(dir.join("dr")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("a.yaml"), dir.join("dr/a.yaml")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("dr/b.yaml"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (_, problems) = backup.read_objects().unwrap();
        let details: Vec<&str> = problems.iter().map(|p| p.detail.as_str()).collect();
        assert_eq!(details, [behind, "not a regular file"]);
    }

    /// A valid Kubernetes name of 253 characters: four dot-separated labels of up to 63.
    fn longest_name() -> String {
        let name = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(name.len(), 253);
        assert!(crate::object::is_object_name(&name));
        name
    }

    #[test]
    fn a_name_too_long_for_a_file_is_stored_shortened_and_read_back_exactly() {
        let root = tempfile::tempdir().unwrap();
        let long = longest_name();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        for name in [long.as_str(), "a"] {
            let yaml = lrs_yaml("dr", name, "deployment");
            writer
                .write_item("dr", name, "deployment", "u", "7", yaml.as_bytes())
                .unwrap();
        }
        // Written again (a list that restarted): one file, one record.
        let yaml = lrs_yaml("dr", &long, "deployment");
        writer
            .write_item("dr", &long, "deployment", "u", "8", yaml.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let manifest = read_manifest(&dir.join(MANIFEST_FILE)).unwrap();
        let file = item_file_name(&long);
        assert_eq!(file.len(), MAX_ITEM_FILE_NAME);
        assert!(
            file.starts_with(&long[..162]) && file.ends_with(".yaml"),
            "{file}"
        );
        assert_ne!(file, item_file_name(&format!("{long}x")));
        // No valid name takes a shortened file: `_` is not allowed in Kubernetes names.
        let spelled = file.trim_end_matches(".yaml");
        assert!(!crate::object::is_object_name(spelled), "{spelled}");
        assert_eq!(
            names_in(&dir.join("dr")),
            ["a.yaml".to_string(), file.clone()]
        );
        let paths: Vec<(&str, &str)> = manifest
            .items
            .iter()
            .map(|i| (i.path.as_str(), i.name.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("dr/a.yaml", "a"),
                (format!("dr/{file}").as_str(), long.as_str())
            ]
        );
        let backup = Backup::open(&dir).unwrap();
        assert!(backup.verify().unwrap().problems.is_empty());
        let (objects, problems) = backup.read_objects().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects[1].object["metadata"]["name"], long.as_str());
        // The same files without the manifest: names come from the files, not their names.
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let loose = open_for_reading(&dir).unwrap();
        let names: Vec<String> = loose.items().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["a".to_string(), long]);
    }

    #[test]
    fn a_manifest_item_must_hold_exactly_one_object() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        let two = format!(
            "{}---\n{}",
            lrs_yaml("dr", "a", "deployment"),
            lrs_yaml("dr", "b", "deployment")
        );
        writer
            .write_item("dr", "a", "deployment", "u", "7", two.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let problems = Backup::open(&dir).unwrap().verify().unwrap().problems;
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].detail,
            "it holds 2 objects; a backup file holds one"
        );
    }

    /// `kubectl get lrs -o yaml` of two objects.
    fn kubectl_list(names: &[&str]) -> String {
        let items: String = names
            .iter()
            .map(|name| {
                lrs_yaml("dr", name, "deployment")
                    .lines()
                    .enumerate()
                    .map(|(i, line)| format!("{}{line}\n", if i == 0 { "- " } else { "  " }))
                    .collect::<String>()
            })
            .collect();
        format!("apiVersion: v1\nitems:\n{items}kind: List\nmetadata:\n  resourceVersion: \"\"\n")
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
                    o.object["kind"].as_str().unwrap().to_string(),
                    o.object["metadata"]["name"].as_str().unwrap(),
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

    #[test]
    fn every_bad_document_is_named_with_its_file_and_place() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bad");
        fs::create_dir(&dir).unwrap();
        let mut list = kubectl_list(&["a"]);
        list = list.replace(
            "items:\n",
            "items:\n- apiVersion: v1\n  kind: ConfigMap\n  data: {}\n",
        );
        fs::write(dir.join("list.yaml"), list).unwrap();
        fs::write(
            dir.join("twice.yaml"),
            format!(
                "{}---\nkind: X\nkind: Y\n",
                lrs_yaml("dr", "b", "deployment")
            ),
        )
        .unwrap();
        fs::write(dir.join("scalar.yaml"), "---\njust text\n").unwrap();
        fs::write(dir.join("comments.yaml"), "# nothing\n---\n").unwrap();
        let backup = open_for_reading(&dir).unwrap();
        let (objects, problems) = backup.read_objects().unwrap();
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "comments.yaml",
                    "the file holds no object (only empty documents)"
                ),
                (
                    "list.yaml",
                    "item 1: `metadata.name` of the ConfigMap is missing"
                ),
                ("scalar.yaml", "not a YAML object"),
                (
                    // Line 14: the second `kind`, not the map's first key.
                    "twice.yaml",
                    "document 2: not valid YAML: the key `kind` is written twice (kubectl would \
                     keep only one of the values) at line 14 column 1"
                ),
            ]
        );
        // The good item of the List stays; a file that cannot be read gives nothing.
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].object["metadata"]["name"], "a");
    }

    #[test]
    fn the_manifest_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let (dir, manifest) = finished_backup(root.path());
        let backup = resolve(root.path(), "lrs_backup_2025_11_21_14_05").unwrap();
        assert_eq!(backup.dir, dir);
        assert_eq!(backup.status, CatalogStatus::Complete);
        assert_eq!(backup.manifest.as_ref(), Some(&manifest));
        assert_eq!(manifest.format_version, FORMAT_VERSION);
        assert_eq!(manifest.status, BackupStatus::Complete);
        assert_eq!(
            manifest.counts_by_type,
            BTreeMap::from([("deployment".into(), 2), ("spark_app".into(), 1)])
        );
        assert_eq!(
            manifest.counts_by_namespace,
            BTreeMap::from([("dr".into(), 2), ("team".into(), 1)])
        );
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
        assert_eq!(json["formatVersion"], 1);
        assert_eq!(json["items"][0]["path"], "dr/a.yaml");
        assert_eq!(json["items"][0]["type"], "deployment");
        assert_eq!(json["items"][0]["resourceVersion"], "7");
        assert_eq!(json["resource"]["plural"], "lrs");
        assert!(backup.verify().unwrap().problems.is_empty());
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

    #[test]
    fn verify_names_every_bad_file() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        fs::write(dir.join("dr/a.yaml"), "tampered").unwrap();
        fs::remove_file(dir.join("dr/b.yaml")).unwrap();
        fs::write(dir.join("dr/extra.yaml"), "x").unwrap();
        let backup = Backup::open(&dir).unwrap();
        let problems = backup.verify().unwrap().problems;
        let found: Vec<(&str, ProblemKind)> =
            problems.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        assert_eq!(
            found,
            [
                ("dr/a.yaml", ProblemKind::Modified),
                ("dr/b.yaml", ProblemKind::Missing),
                ("dr/extra.yaml", ProblemKind::Unexpected),
            ]
        );
    }

    #[test]
    fn verify_checks_kind_and_name_even_when_the_checksum_matches() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        let wrong_kind = lrs_yaml("dr", "a", "deployment").replace("LongRunningService", "Pod");
        writer
            .write_item("dr", "a", "deployment", "u", "7", wrong_kind.as_bytes())
            .unwrap();
        let misnamed = lrs_yaml("dr", "other", "deployment");
        writer
            .write_item("dr", "b", "deployment", "u", "7", misnamed.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let problems = Backup::open(&dir).unwrap().verify().unwrap().problems;
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].kind, ProblemKind::Invalid);
        assert_eq!(
            problems[0].detail,
            "kind is `Pod`, expected `LongRunningService`"
        );
        assert_eq!(problems[1].detail, "metadata.name is `other`, expected `b`");
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
        fs::write(dir.join(MANIFEST_FILE), r#"{"formatVersion": 2}"#).unwrap();
        let err = Backup::open(&dir).unwrap_err();
        assert!(
            matches!(err, FolderError::NewerFormat { version: 2, .. }),
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
