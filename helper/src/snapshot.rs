//! `deployments.json`, the snapshot of deployment states taken before the first deactivation
//! (DESIGN.md section 6), in one place: its format, how a re-run adds to it without losing what
//! the first run recorded, and reading and writing it. It is part of the backup folder format
//! (the plugin writes it into a backup) and also a state file of its own (`--state FILE`, for
//! the plugin and for the helper used by hand).

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::{Deployment, TargetStatus};

/// The file name inside a backup folder.
pub const SNAPSHOT_FILE: &str = "deployments.json";
/// The version of the snapshot format written here.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// The states of all deployments visible to the token's user, before any deactivation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub format_version: u32,
    /// The API the states were read from.
    pub api_url: String,
    /// When the first snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// When a later deactivation last added to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    pub deployments: Vec<SnapshotEntry>,
}

/// One deployment's state when it was recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotEntry {
    pub id: String,
    pub label: String,
    /// The status as the API spelled it (`active`, `inactive`, ...); `null` when it had none.
    pub status: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl SnapshotEntry {
    pub fn was_active(&self) -> bool {
        TargetStatus::Active.is(self.status.as_deref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read the deployment snapshot {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the deployment snapshot {path} is not valid")]
    Invalid {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the deployment snapshot {path} has format version {version}, newer than this tool's ({SNAPSHOT_FORMAT_VERSION})"
    )]
    NewerFormat { path: String, version: u32 },
    #[error("cannot write the deployment snapshot {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Snapshot {
    /// The snapshot to write before deactivating: `current` as it is now, merged into
    /// `previous` (an earlier run's) so that a re-run never forgets what was active before the
    /// first run. A deployment counts as active-before when the earlier record says so or when
    /// it is active now; deployments that vanished keep their record.
    pub fn record(
        previous: Option<Snapshot>,
        current: &[Deployment],
        api_url: &str,
        now: DateTime<Utc>,
    ) -> Snapshot {
        let fresh = |d: &Deployment| SnapshotEntry {
            id: d.id.clone(),
            label: d.label.clone(),
            status: d.status.clone(),
            recorded_at: now,
        };
        let Some(previous) = previous else {
            return Snapshot {
                format_version: SNAPSHOT_FORMAT_VERSION,
                api_url: api_url.to_string(),
                taken_at: now,
                updated_at: None,
                deployments: current.iter().map(fresh).collect(),
            };
        };
        let mut recorded: HashMap<&str, &SnapshotEntry> = previous
            .deployments
            .iter()
            .map(|e| (e.id.as_str(), e))
            .collect();
        let mut deployments: Vec<SnapshotEntry> = current
            .iter()
            .map(|d| match recorded.remove(d.id.as_str()) {
                Some(entry)
                    if entry.was_active() || !TargetStatus::Active.is(d.status.as_deref()) =>
                {
                    entry.clone()
                }
                _ => fresh(d),
            })
            .collect();
        deployments.extend(
            previous
                .deployments
                .iter()
                .filter(|e| recorded.contains_key(e.id.as_str()))
                .cloned(),
        );
        Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            api_url: previous.api_url.clone(),
            taken_at: previous.taken_at,
            updated_at: Some(now),
            deployments,
        }
    }

    /// Reads a snapshot; `None` when the file does not exist.
    pub fn read(path: &Path) -> Result<Option<Snapshot>, SnapshotError> {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SnapshotError::Read { path: name, source }),
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Version {
            format_version: u32,
        }
        let version: Version =
            serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Invalid {
                path: name.clone(),
                source,
            })?;
        if version.format_version > SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::NewerFormat {
                path: name,
                version: version.format_version,
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| SnapshotError::Invalid { path: name, source })
    }

    /// Writes the snapshot atomically (mode 0600).
    pub fn write(&self, path: &Path) -> Result<(), SnapshotError> {
        let mut json = serde_json::to_vec_pretty(self).expect("a snapshot always serialises");
        json.push(b'\n');
        crate::files::write_atomically(path, &json).map_err(|source| SnapshotError::Write {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, status: &str) -> Deployment {
        Deployment {
            id: id.into(),
            label: format!("label-{id}"),
            status: Some(status.into()),
        }
    }

    #[test]
    fn a_rerun_keeps_what_was_active_before_the_first_run() {
        let t0 = Utc::now();
        let first = Snapshot::record(
            None,
            &[deployment("a", "active"), deployment("b", "inactive")],
            "https://dr/api/v2/",
            t0,
        );
        // After the first deactivation everything is inactive; c appeared, b was started by
        // someone in between, a vanished.
        let t1 = t0 + chrono::Duration::minutes(5);
        let second = Snapshot::record(
            Some(first.clone()),
            &[deployment("b", "active"), deployment("c", "inactive")],
            "https://dr/api/v2/",
            t1,
        );
        let status = |id: &str| {
            second
                .deployments
                .iter()
                .find(|e| e.id == id)
                .map(|e| (e.status.clone().unwrap(), e.recorded_at))
                .unwrap()
        };
        assert_eq!(status("a"), ("active".into(), t0));
        assert_eq!(status("b"), ("active".into(), t1));
        assert_eq!(status("c"), ("inactive".into(), t1));
        assert_eq!(second.taken_at, t0);
        assert_eq!(second.updated_at, Some(t1));
    }

    #[test]
    fn round_trips_and_refuses_newer_formats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        assert_eq!(Snapshot::read(&path).unwrap(), None);
        let snapshot = Snapshot::record(None, &[deployment("a", "active")], "u", Utc::now());
        snapshot.write(&path).unwrap();
        assert_eq!(Snapshot::read(&path).unwrap(), Some(snapshot));
        std::fs::write(&path, r#"{"formatVersion": 9}"#).unwrap();
        assert!(matches!(
            Snapshot::read(&path),
            Err(SnapshotError::NewerFormat { version: 9, .. })
        ));
    }
}
