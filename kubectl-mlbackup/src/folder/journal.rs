//! The journal of a backup (`journal.jsonl`): one JSON line per step of prepare, recover and
//! restore, appended safely, and the step records read back.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalog::Backup;
use super::{FolderError, JOURNAL_FILE, io_error};

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

impl Backup {
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
}
