//! The backup folder, format versions 1 and 2 (DESIGN.md sections 4 and 11: version 2 is an
//! encrypted backup), in one place: its files, the manifest and the errors of reading and
//! writing it. Each job has its own file: `name` (the names of backups and of their files),
//! `writer` (writing a backup), `rekey` (re-encrypting one to new recipients), `catalog`
//! (recognising, listing, finding and deleting backups), `verify` (reading a backup's objects,
//! checked) and `journal` (the record of runbook steps); the public API is re-exported here.
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

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mlbackup_helper::text::escape_controls;
use serde::{Deserialize, Serialize};

use crate::encryption::EncryptionRecord;

mod catalog;
mod journal;
mod name;
mod records;
mod rekey;
mod verify;
mod writer;

use name::MAX_NAME_ATTEMPTS;

pub use catalog::{
    Backup, BackupSummary, Catalog, CatalogStatus, Unreadable, catalog, delete_leftovers, resolve,
    resolve_for_reading, root,
};
pub use journal::{StepEvent, StepRecord};
pub use name::{PARTIAL_SUFFIX, default_name};
pub use records::ItemTotals;
// `rekey_into` writes the rekeyed copy into any folder: for the s3:// location layer, which
// rekeys a bucket's backup through a local copy.
#[allow(unused_imports)]
pub use rekey::rekey_into;
pub use rekey::{RekeyOutcome, rekey};
pub use verify::{Place, Problem, ProblemKind};
pub use writer::{BackupInfo, BackupWriter, ItemToWrite, count_by};

/// The version of the folder layout and manifest of an unencrypted backup: unchanged since the
/// first release, so older plugins read new unencrypted backups.
pub const FORMAT_VERSION: u32 = 1;
/// The version of an encrypted backup (DESIGN.md section 11): items are `<ns>/<name>.yaml.age`
/// and the manifest has an `encryption` record. A plugin that knows only version 1 would take
/// every item for missing or invalid, so it must refuse the backup as newer instead.
pub const ENCRYPTED_FORMAT_VERSION: u32 = 2;
/// The newest version this plugin reads (it reads every older one).
pub const NEWEST_FORMAT_VERSION: u32 = ENCRYPTED_FORMAT_VERSION;
/// Written last: its presence in a directory without `.partial` means the backup is complete.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Optional snapshot of deployment states (DESIGN.md section 6; format in
/// `mlbackup_helper::snapshot`, which the helper shares).
pub const DEPLOYMENTS_FILE: &str = mlbackup_helper::snapshot::SNAPSHOT_FILE;
/// The LRS CustomResourceDefinition as the cluster served it when the backup was taken
/// (`kubectl get crd -o yaml` less managedFields): recorded in the manifest with its SHA-256
/// when it could be read. Not encrypted: it holds the type's schema, no object's data.
pub const CRD_FILE: &str = "crd.yaml";
/// Optional record of the steps of prepare/recover/restore, one JSON object per line.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// A failure to read, write or delete a backup folder, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("`{name}` is not a valid backup name: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("a backup named `{name}` already exists in {}", root.display())]
    AlreadyExists { name: String, root: PathBuf },

    #[error("no free backup name for `{base}` in {} after {MAX_NAME_ATTEMPTS} attempts", root.display())]
    NoFreeName { base: String, root: PathBuf },

    /// The names come from the server: escaped whole, so that a newline in one cannot start a
    /// line of its own in a message that keeps its own newlines.
    #[error(
        "`{}/{}` is not a valid Kubernetes namespace and object name; it is not written as a file",
        escape_controls(namespace),
        escape_controls(name)
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

    #[error("{} has format version {version}, newer than this plugin's ({NEWEST_FORMAT_VERSION})", path.display())]
    NewerFormat { path: PathBuf, version: u64 },

    #[error("{} has format version {version}, which {reason}", path.display())]
    InconsistentFormat {
        path: PathBuf,
        version: u32,
        reason: &'static str,
    },

    #[error("the backup `{name}` is not encrypted")]
    NotEncrypted { name: String },

    #[error("cannot rekey the backup `{name}`: {reason}")]
    RekeyRefused { name: String, reason: String },

    #[error(
        "the rekeyed copy {} failed verification, so the backup was left as it was: {detail}",
        path.display()
    )]
    RekeyUnverified { path: PathBuf, detail: String },

    #[error(transparent)]
    Encryption(#[from] crate::encryption::EncryptionError),

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
            FolderError::NotFound { root, .. } => Some(format!(
                "run `kubectl mlbackup list --dir {}` to see the backups there; set --dir or \
                 MLBACKUP_DIR to look elsewhere",
                root.display()
            )),
            // Listing it again would say the same: say where backups come from instead.
            FolderError::NoRoot { root } => Some(format!(
                "check the path (--dir, else MLBACKUP_DIR, else the current directory); \
                 `kubectl mlbackup backup --dir {}` creates it with the first backup",
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
            FolderError::NotEncrypted { .. } => Some(
                "only an encrypted backup can be rekeyed; take a new backup with --recipient"
                    .into(),
            ),
            FolderError::Encryption(inner) => inner.hint(),
            FolderError::RekeyRefused { .. } | FolderError::RekeyUnverified { .. } => None,
            FolderError::InconsistentFormat { .. }
            | FolderError::NoFreeName { .. }
            | FolderError::InvalidItem { .. }
            | FolderError::BadManifest { .. } => None,
            FolderError::Io { source, .. } => permission_hint(source),
        }
    }
}

impl FolderError {
    /// Whether the file system refused access (not "missing", not "no backup"): a backup
    /// written by another user, which this user may not read.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, FolderError::Io { source, .. }
            if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

/// The hint for a file or folder this user may not read or change.
pub fn permission_hint(source: &io::Error) -> Option<String> {
    (source.kind() == io::ErrorKind::PermissionDenied).then(|| {
        "backups are private to the user who wrote them (folders 0700, files 0600): run as \
         that user (often root, or the pod's), or have it grant access"
            .into()
    })
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
    /// A stable id of the cluster: the uid of its `kube-system` namespace (server URLs and
    /// context names differ between operators). Absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
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
    /// [`CRD_FILE`]; absent when the definition could not be read, and in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crd: Option<SavedFile>,
    /// How the items are encrypted; absent for an unencrypted backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionRecord>,
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
            crd: self.crd,
            encryption: self.encryption,
            items,
            status: self.status,
            errors: self.errors,
        }
    }
}

/// A file of a backup besides the items, checked like them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SavedFile {
    /// Relative to the backup folder.
    pub path: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub bytes: u64,
}

/// One LRS file of a backup.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestItem {
    /// `<namespace>/<name>.yaml` (`.yaml.age` when encrypted), relative to the backup folder,
    /// always with `/`.
    pub path: String,
    pub namespace: String,
    pub name: String,
    /// The value of the `datarobot-lrs-type` label, `""` when unset.
    pub r#type: String,
    pub uid: String,
    pub resource_version: String,
    /// Hex SHA-256 of the file's bytes (of the ciphertext, when encrypted).
    pub sha256: String,
    pub bytes: u64,
    /// Hex SHA-256 of the YAML an encrypted file holds; absent when the file is the YAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
}

impl<I> Manifest<I> {
    /// The public keys the items are encrypted to; `None` for an unencrypted backup.
    pub fn recipients(&self) -> Option<&[String]> {
        self.encryption.as_ref().map(|e| e.recipients.as_slice())
    }
}

use crate::digest::hex;
pub use crate::digest::sha256_hex;

#[cfg(test)]
mod testing {
    //! What the tests of every part of the folder build on.
    use super::catalog::read_manifest;
    use super::*;
    use chrono::{Local, TimeZone};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    pub(super) fn started() -> DateTime<Local> {
        Local.with_ymd_and_hms(2025, 11, 21, 14, 5, 30).unwrap()
    }

    pub(super) fn info() -> BackupInfo {
        BackupInfo {
            created_at: started().with_timezone(&Utc),
            cluster: ClusterRef {
                server: "https://127.0.0.1:6443".into(),
                context: Some("sandbox".into()),
                id: None,
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

    pub(super) fn lrs_yaml(namespace: &str, name: &str, lrs_type: &str) -> String {
        format!(
            "apiVersion: lrs.datarobot.com/v1\nkind: LongRunningService\nmetadata:\n  name: {name}\n  \
             namespace: {namespace}\n  uid: uid-{name}\n  resourceVersion: \"7\"\n  labels:\n    \
             datarobot-lrs-type: {lrs_type}\nspec:\n  image: x\n"
        )
    }

    /// A finished backup of three LRSes in two namespaces, and its manifest as read back.
    pub(super) fn finished_backup(root: &Path) -> (PathBuf, Manifest) {
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

    pub(super) fn mode(path: &Path) -> u32 {
        path.metadata().unwrap().permissions().mode() & 0o777
    }

    pub(super) fn names_in(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// `kubectl get lrs -o yaml` of two objects.
    pub(super) fn kubectl_list(names: &[&str]) -> String {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::testing::*;
    use std::fs;

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
}
