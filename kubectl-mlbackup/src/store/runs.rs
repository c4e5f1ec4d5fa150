//! The run records of a location's schedules (`.mlbackup-runs/SCHEDULE/FILE`): small files that
//! `scheduled-run` replaces whole and `schedule status` reads. Dot-prefixed, so that neither a
//! folder's catalog nor a bucket's listing takes them for a backup. This module moves bytes;
//! what a record holds is the schedule's business.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::location::key;
use crate::location::s3::S3Error;

use super::{Kind, Store, StoreError};

/// Where the run records are, under the location.
pub const RUNS_DIR: &str = ".mlbackup-runs";
/// The largest record read: a few hundred bytes of JSON and an error's text.
const MAX_RECORD_BYTES: u64 = 1 << 20;

impl Store {
    /// Writes (replaces) the record `file` of `schedule`: a folder's atomically (a temporary file
    /// renamed over it), a bucket's as one put.
    pub async fn write_run_record(
        &self,
        schedule: &str,
        file: &str,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.check_writable("write a run record")?;
        let relative = record_key(schedule, file);
        match &self.kind {
            Kind::Folder { root, .. } => write_file(&root.join(&relative), &bytes),
            Kind::Bucket(s3) => Ok(s3.put(&relative, bytes).await?),
        }
    }

    /// Reads the record `file` of `schedule`; `None` when there is none.
    pub async fn read_run_record(
        &self,
        schedule: &str,
        file: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let relative = record_key(schedule, file);
        match &self.kind {
            Kind::Folder { root, .. } => {
                let path = root.join(&relative);
                match fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(StoreError::Io {
                        action: "read",
                        path,
                        source,
                    }),
                }
            }
            Kind::Bucket(s3) => match s3.get(&relative, MAX_RECORD_BYTES).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(S3Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(err.into()),
            },
        }
    }
}

/// `.mlbackup-runs/SCHEDULE/FILE`. The schedule's name is a DNS label (checked by the command
/// line) and the file one of the schedule's constants, so neither can leave the folder.
fn record_key(schedule: &str, file: &str) -> String {
    debug_assert!(key::check_part(schedule).is_ok() && key::check_part(file).is_ok());
    format!("{RUNS_DIR}/{schedule}/{file}")
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |action, path: PathBuf| {
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().expect("a record has a folder");
    fs::create_dir_all(dir).map_err(io("create", dir.to_path_buf()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".record-")
        .tempfile_in(dir)
        .map_err(io("create a file in", dir.to_path_buf()))?;
    temp.write_all(bytes)
        .map_err(io("write", temp.path().to_path_buf()))?;
    temp.persist(path)
        .map_err(|err| io("write", path.to_path_buf())(err.error))?;
    Ok(())
}
